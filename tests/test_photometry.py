"""Measured photometry recovers the known fluxes of rendered sources within their errors."""

from __future__ import annotations

import galsim
import numpy as np
import pytest

from deepdip.photometry import add_photometry, measure_photometry
from deepdip.store import CutoutStore, create_store

SCALE = 0.396
FLUXES = np.array([40.0, 120.0, 200.0, 260.0, 300.0])  # nanomaggies, one per band
SIGMA = 0.05  # nanomaggies / pixel


def _stamps(n, rng, size=48, neighbour=False):
    """n noisy 5-band stamps of one exponential galaxy with FLUXES (same profile in every band)."""
    gal = galsim.Convolve(galsim.Exponential(half_light_radius=1.5).shear(q=0.6, beta=30 * galsim.degrees),
                          galsim.Kolmogorov(fwhm=1.3))
    unit = gal.drawImage(nx=size, ny=size, scale=SCALE).array
    if neighbour:  # a bright compact source 7" from the centre
        unit = unit + 0.8 * galsim.Convolve(galsim.Exponential(half_light_radius=0.6), galsim.Kolmogorov(fwhm=1.3)
                                            ).drawImage(nx=size, ny=size, scale=SCALE, offset=(17, 5)).array
    clean = FLUXES[None, :, None, None] * unit[None, None]
    return (clean + rng.normal(0, SIGMA, (n, 5, size, size))).astype(np.float32), unit


def test_kron_fluxes_recover_known_fluxes_and_colours():
    rng = np.random.default_rng(1)
    images, unit = _stamps(200, rng)
    phot = measure_photometry(images, SCALE, "ugriz")
    flux = np.stack([phot[f"flux_{b}"] for b in "ugriz"], axis=1)
    err = np.stack([phot[f"flux_err_{b}"] for b in "ugriz"], axis=1)
    # a Kron aperture (factor 2.5) holds ~90-100 % of an exponential galaxy's light
    frac = np.median(flux / FLUXES, axis=0)
    assert np.all((frac > 0.88) & (frac < 1.01)), frac
    # the same aperture in every band: colours are unbiased, within their errors
    ratio = flux[:, 0] / flux[:, 2]
    assert abs(np.median(ratio) - FLUXES[0] / FLUXES[2]) < 3 * np.std(ratio) / np.sqrt(len(ratio)) + 2e-3
    # the reported errors describe the scatter: of the fixed circular aperture's fluxes, and of
    # Kron colours (the Kron radius jitters with the noise, alike in every band)
    aper = np.stack([phot[f"flux_aper_{b}"] for b in "ugriz"], axis=1)
    aper_err = np.median(np.stack([phot[f"flux_aper_err_{b}"] for b in "ugriz"], axis=1), axis=0)
    assert np.allclose(np.std(aper, axis=0), aper_err, rtol=0.25)
    c = FLUXES[0] / FLUXES[2]
    colour_err = np.median(np.sqrt(err[:, 0] ** 2 + c**2 * err[:, 2] ** 2))
    assert np.std(flux[:, 0] - c * flux[:, 2]) == pytest.approx(colour_err, rel=0.25)
    assert np.median(phot["hlr_meas"]) == pytest.approx(1.7, rel=0.25)  # PSF-broadened 1.5"


def test_neighbour_is_masked():
    rng = np.random.default_rng(2)
    alone = measure_photometry(_stamps(50, rng)[0], SCALE, "ugriz")
    crowded = measure_photometry(_stamps(50, rng, neighbour=True)[0], SCALE, "ugriz")
    assert np.median(crowded["flux_r"]) == pytest.approx(np.median(alone["flux_r"]), rel=0.03)


def test_circular_aperture_flux_of_a_point_source():
    psf = galsim.Gaussian(fwhm=1.2)
    image = psf.drawImage(nx=32, ny=32, scale=SCALE).array * 100.0
    phot = measure_photometry(np.repeat(image[None, None], 2, axis=1) + 1e-4 *
                              np.random.default_rng(3).normal(size=(1, 2, 32, 32)), SCALE, "gr",
                              aperture_diameter=3.0)
    sigma = 1.2 / 2.3548
    expected = 100.0 * (1 - np.exp(-1.5**2 / (2 * sigma**2)))  # Gaussian light within r = 1.5"
    assert phot["flux_aper_r"][0] == pytest.approx(expected, rel=0.01)


def test_add_photometry_to_a_store(tmp_path):
    rng = np.random.default_rng(4)
    images, _ = _stamps(20, rng, size=32)
    cat = {"id": np.arange(20), "z_spec": np.full(20, 0.1, np.float32), "ebv": np.zeros(20, np.float32)}
    path = create_store(tmp_path / "s.h5", images, cat, bands="ugriz", survey="sdss", pixel_scale=SCALE)
    names = add_photometry(path)
    assert "flux_r" in names and "flux_err_u" in names
    store = CutoutStore(path)
    assert np.all(np.isfinite(store.column("flux_r"))) and np.all(store.column("flux_r") > 0)


# -- the one AB conversion, the one robust noise, flux units (deepdip.photometry.units / .noise) ----------

def test_flux_to_mag_and_back_are_the_formulas_they_replace_bit_for_bit():
    from deepdip.photometry import flux_to_mag, mag_to_flux

    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        flux = rng.lognormal(3, 2, 1000).astype(dtype)
        flux[0] = 1.0  # a 1-nanomaggy (mag 22.5) source, and with zero point 0 a 1-maggy one (mag -0.0)
        mag = flux_to_mag(flux)
        assert mag.dtype == dtype
        assert mag.tobytes() == (22.5 - 2.5 * np.log10(flux)).tobytes()
        assert flux_to_mag(flux, zero_point=0).tobytes() == (-2.5 * np.log10(flux)).tobytes()
        assert mag_to_flux(mag).tobytes() == (10 ** (-0.4 * (mag - 22.5))).tobytes()
        np.testing.assert_allclose(mag_to_flux(mag), flux, rtol=1e-5 if dtype == np.float32 else 1e-12)
    assert flux_to_mag(3631.0, zero_point=8.9) == pytest.approx(0.0, abs=1e-4)  # janskys: 3631 Jy is AB 0


def test_robust_sigma_is_the_normalised_mad():
    from deepdip.photometry import robust_sigma

    rng = np.random.default_rng(1)
    x = rng.normal(0, 2.0, (8, 5, 300)).astype(np.float32)
    x[:, :, :10] = 1e4  # outliers (a star on the border) leave it alone
    hand = 1.4826 * np.median(np.abs(x - np.median(x, axis=2, keepdims=True)), axis=2)
    assert robust_sigma(x, axis=2).tobytes() == hand.tobytes() and robust_sigma(x, axis=2).dtype == np.float32
    assert abs(np.median(robust_sigma(x, axis=2)) - 2.0) < 0.15 and np.all(x.std(axis=2) > 500)
    flat = x.ravel().astype(np.float64)
    assert robust_sigma(flat) == 1.4826 * np.median(np.abs(flat - np.median(flat)))
    assert robust_sigma(x, axis=(1, 2), keepdims=True).shape == (8, 1, 1)


@pytest.mark.parametrize(("unit", "factor"), [
    ("nanomaggy", 1.0), ("Nanomaggies", 1.0), ("nmgy", 1.0), ("maggy", 1e9), ("MAGGIES", 1e9),
    ("Jy", 1 / 3631e-9), ("mjy", 1e-3 / 3631e-9), ("uJy", 1e-6 / 3631e-9), ("nJy", 1e-9 / 3631e-9),
    ("erg / (s cm2 Hz)", 1e23 / 3631e-9), ("W m-2 Hz-1", 1e26 / 3631e-9), ("µJy", 1e-6 / 3631e-9),
])
def test_flux_units_are_read_by_astropy(unit, factor):
    """The names deepdip always took give the same factors as its old table (exactly); any other
    flux density astropy knows is converted through 1 maggy = 3631 Jy."""
    from deepdip.photometry import flux_factors

    got = flux_factors("gr", unit)
    if unit.lower() in ("nanomaggy", "nanomaggies", "nmgy", "maggy", "maggies", "jy", "mjy", "ujy", "njy"):
        assert np.array_equal(got, [factor, factor])
    np.testing.assert_allclose(got, factor, rtol=1e-12)


def test_counts_with_zero_points_and_bad_units():
    from deepdip.errors import DeepdipError
    from deepdip.photometry import flux_factors

    assert np.array_equal(flux_factors("gr", "counts", 27.0), np.full(2, 10.0 ** (-0.4 * (27.0 - 22.5))))
    np.testing.assert_allclose(flux_factors("gr", "counts", {"g": 22.5, "r": 25.0}), [1.0, 0.1])
    for unit, zp, message in (("counts", None, "needs a zero point"), ("counts", {"g": 25.0}, "missing for band"),
                              ("furlongs", None, "unknown flux unit"), ("m", None, "not a flux density"),
                              ("mag", None, "unknown flux unit"), ("", None, "unknown flux unit")):
        with pytest.raises(DeepdipError, match=message):
            flux_factors("gr", unit, zp)


def test_the_package_keeps_its_names():
    import deepdip.photometry as ph
    from deepdip.photometry.catalog import Photometry
    from deepdip.photometry.measure import measure_photometry as measure

    assert ph.measure_photometry is measure and ph.Photometry is Photometry
    assert set(ph.__all__) <= set(dir(ph))


# --- SDSS model and Petrosian fluxes (deepdip.photometry.sdss) -----------------------------------------

def _profile_stamps(kinds, size=64, scale=0.396, fluxes=(100.0, 150.0), seeing=(1.4, 1.2), seed=1):
    """Noise-free SDSS-like stamps of truncated exponential (0) / de Vaucouleurs (1) galaxies in two
    bands with their PSF images (Kolmogorov, pixel included), and the true shapes."""
    rng = np.random.default_rng(seed)
    n = len(kinds)
    images = np.zeros((n, 2, size, size), np.float32)
    psfs = np.zeros_like(images)
    truth = []
    for k, kind in enumerate(kinds):
        hlr, q, beta, off = rng.uniform(1.0, 2.5), rng.uniform(0.4, 1.0), rng.uniform(0, 180), rng.uniform(-0.7, 0.7, 2)
        prof = (galsim.Sersic(n=1, half_light_radius=hlr, trunc=4 * hlr) if kind == 0
                else galsim.DeVaucouleurs(half_light_radius=hlr, trunc=8 * hlr))
        prof = prof.shear(q=q, beta=beta * galsim.degrees)
        for b, fwhm in enumerate(seeing):
            psf = galsim.Gaussian(fwhm=fwhm)  # compact: all of the PSF's light on the stamp
            image = galsim.Image(images[k, b], scale=scale)
            (galsim.Convolve(prof, psf) * fluxes[b]).drawImage(image=image, offset=off)
            psf.drawImage(image=galsim.Image(psfs[k, b], scale=scale))
        truth.append((hlr, q, beta, off))
    return images, psfs, truth


def test_sdss_model_fluxes_recover_profile_flux_and_shape():
    from deepdip.photometry.sdss import model_fluxes

    kinds = [0, 1, 0, 1]
    images, psfs, truth = _profile_stamps(kinds)
    m = model_fluxes(images, psfs, 0.396, 1, sky_sigma=np.ones((4, 2)))
    assert list(m["model_type"]) == kinds  # the better chi^2 picks the right profile
    assert np.allclose(m["flux"], [100.0, 150.0], rtol=2e-3)  # amplitudes of every band, the r shape fixed
    for k, (hlr, q, beta, off) in enumerate(truth):
        assert m["r_e"][k] == pytest.approx(hlr, rel=5e-3) and m["q"][k] == pytest.approx(q, abs=5e-3)
        assert m["x"][k] == pytest.approx(off[0], abs=0.02) and m["y"][k] == pytest.approx(off[1], abs=0.02)
        assert abs((m["pa"][k] - beta + 90) % 180 - 90) < 1.0  # degrees, from +x towards +y as GalSim's beta
    # forced photometry with the shape given reproduces the fit
    again = model_fluxes(images, psfs, 0.396, 1, sky_sigma=np.ones((4, 2)), shape=m)
    assert np.allclose(again["flux"], m["flux"], rtol=1e-5)


def test_petrosian_flux_of_an_exponential_is_the_analytic_one():
    from scipy.optimize import brentq

    from deepdip.photometry.sdss import petrosian_fluxes

    def grow(x):  # flux of a unit exponential within x scale radii
        return 1 - (1 + x) * np.exp(-x)

    def ratio(x):
        return (grow(1.25 * x) - grow(0.8 * x)) / ((1.25**2 - 0.8**2) * grow(x)) - 0.2

    x_p = brentq(ratio, 0.5, 10.0)
    scale, hlr = 0.2, 2.0
    r_s = galsim.Exponential(half_light_radius=hlr).scale_radius
    img = galsim.Convolve(galsim.Exponential(half_light_radius=hlr, flux=50.0), galsim.Gaussian(fwhm=0.2))
    images = np.stack([img.drawImage(nx=160, ny=160, scale=scale).array] * 2)[None].astype(np.float32)
    images[0, 1] *= 2.0
    p = petrosian_fluxes(images, scale, 0, sky_sigma=np.ones((1, 2)))
    assert p["r_petro"][0] == pytest.approx(x_p * r_s, rel=0.01)
    assert p["flux"][0] == pytest.approx(50.0 * grow(2 * x_p) * np.array([1.0, 2.0]), rel=2e-3)
    assert p["r50"][0] == pytest.approx(hlr, rel=0.03) and not p["clipped"][0]
    forced = petrosian_fluxes(images, scale, 0, sky_sigma=np.ones((1, 2)), r_petro=p["r_petro"])
    assert np.allclose(forced["flux"], p["flux"], rtol=1e-9)


def test_sdss_profile_table_lookup_is_np_interp_on_the_same_nodes():
    """The fits' table lookup (index arithmetic on the geometric grid) is the piecewise-linear
    function np.interp gives on the same nodes, 0 from the last on, to float32 rounding, at the
    nodes, between them, below the first geometric node and at the ends."""
    from deepdip.photometry import sdss

    rng = np.random.default_rng(0)
    nodes = sdss._K_TABLE
    k = np.concatenate([[0.0, sdss._K_LO, 0.9999 * sdss._K_HI, 1.0001 * sdss._K_HI, 5e3], nodes[1::97],
                        rng.uniform(0, 2 * sdss._K_LO, 2000),
                        np.exp(rng.uniform(np.log(sdss._K_LO), np.log(sdss._K_HI), 20000))]).astype(np.float32)
    values = np.cos(3 * nodes) / (1 + nodes) + 1e-3 * np.sin(40 * nodes)  # wiggles on every scale
    got = sdss._KTable(values)(k)
    ref = np.interp(k.astype(np.float64), nodes, values, right=0.0)
    assert got.dtype == np.float32
    assert np.abs(got - ref).max() < 2e-6
    assert np.all(got[k > sdss._K_HI] == 0)
    with np.errstate(invalid="raise"):  # an infinite k lands in the zero segment, no wrapped cast
        assert sdss._KTable.segments(np.array([np.inf], np.float32))[0] == sdss._K_STEPS
    seg = sdss._KTable.segments(k)
    assert np.all(sdss._KTable(values).at(k, seg) == got)  # one segment search serves every table


def test_sdss_model_image_is_the_inverse_transform_cropped_to_the_stamp():
    """The fits' two-pass inverse FFT (rows of the stamp only in the second pass) is irfft2 + crop."""
    from deepdip.photometry import sdss

    rng = np.random.default_rng(5)
    for size in (24, 23):
        g = sdss._grid(size, 0.396)
        k = (rng.normal(size=(3, 2, g["grid"], g["grid"] // 2 + 1))
             + 1j * rng.normal(size=(3, 2, g["grid"], g["grid"] // 2 + 1))).astype(np.complex64)
        full = np.fft.irfft2(k.astype(np.complex128), s=(g["grid"], g["grid"]))
        lo = g["lo"]
        got = sdss._image(k, g)
        assert got.dtype == np.float32 and got.shape == (3, 2, size, size)
        np.testing.assert_allclose(got, full[..., lo:lo + size, lo:lo + size], atol=1e-6 * np.abs(full).max())


def test_sdss_model_fit_jacobian_matches_finite_differences():
    """The analytic (variable-projection) Jacobian the LM fit steps with, against central differences."""
    from deepdip.photometry import sdss

    images, psfs, _ = _profile_stamps([0, 1], size=32)
    g = sdss._grid(32, 0.396)
    psf_k = sdss.psf_transform(psfs[:, 0], g)
    w2 = np.full(images[:, 0].shape, 4.0, np.float32)
    rng = np.random.default_rng(3)
    p = np.column_stack([rng.uniform(-0.5, 0.5, (2, 2)), np.log([0.8, 1.1]), [0.3, -0.2], [0.1, 0.25]])
    for kind, name in enumerate(sdss.PROFILES):
        table = sdss.profile_tables()[name]
        res, jac = sdss._jacobian(p[kind:kind + 1], images[kind:kind + 1, 0], w2[kind:kind + 1], psf_k[kind:kind + 1],
                                  table, g)
        for j, h in enumerate([1e-3, 1e-3, 1e-4, 1e-4, 1e-4]):
            up, down = p[kind:kind + 1].copy(), p[kind:kind + 1].copy()
            up[0, j] += h
            down[0, j] -= h
            r_up = sdss._project(sdss._draw(up, psf_k[kind:kind + 1], table, g), images[kind:kind + 1, 0],
                                 w2[kind:kind + 1])[1]
            r_down = sdss._project(sdss._draw(down, psf_k[kind:kind + 1], table, g), images[kind:kind + 1, 0],
                                   w2[kind:kind + 1])[1]
            numeric = (r_up - r_down) / (2 * h)
            scale = np.abs(numeric).max()
            assert np.abs(jac[0, :, j] - numeric[0]).max() < 0.02 * scale, (name, j)


def test_sdss_model_fluxes_through_known_kolmogorov_psfs():
    """``psf_fwhm``: the mock's Kolmogorov PSFs (pixel included) known exactly, no PSF image needed."""
    from deepdip.photometry.sdss import model_fluxes

    scale, size, fwhm = 0.396, 48, (1.45, 1.2)
    images = np.zeros((2, 2, size, size), np.float32)
    disk = galsim.Sersic(n=1, half_light_radius=1.5, trunc=6.0).shear(q=0.6, beta=30 * galsim.degrees)
    for k, prof in enumerate([disk, galsim.DeVaucouleurs(half_light_radius=1.2, trunc=9.6)]):
        for b, (f, flux) in enumerate(zip(fwhm, (80.0, 120.0))):
            galsim.Convolve(prof * flux, galsim.Kolmogorov(fwhm=f)).drawImage(
                image=galsim.Image(images[k, b], scale=scale))
    m = model_fluxes(images, None, scale, 1, sky_sigma=np.ones((2, 2)), psf_fwhm=np.tile(fwhm, (2, 1)))
    assert list(m["model_type"]) == [0, 1]
    assert np.allclose(m["flux"], [80.0, 120.0], rtol=3e-3)
    assert m["r_e"] == pytest.approx([1.5, 1.2], rel=0.01)
    with pytest.raises(ValueError, match="one of psf"):
        model_fluxes(images, np.zeros((2, 9, 9)), scale, 1, psf_fwhm=np.tile(fwhm, (2, 1)))


def test_mock_catalogue_photometry_follows_the_preset():
    """sdss mocks publish model fluxes as flux_<band> (Kron kept as flux_kron_<band>); Kron presets are unchanged."""
    from deepdip.errors import DeepdipValueError
    from deepdip.photometry.pipeline import catalogue_photometry, photometry_method
    from deepdip.simulate import population, rendering
    from deepdip.surveys import load_survey

    sdss = load_survey("sdss")
    assert photometry_method(sdss) == {**sdss["catalogue_photometry"], "method": "model", "reference_band": "r"}
    rng = np.random.default_rng(5)
    ctx = population.prepare(sdss)
    pop = population.sample_population(sdss, 12, rng, ctx)
    images, obs = rendering.render_block(sdss, pop, rng, ctx)
    fwhm = np.column_stack([obs[f"psf_fwhm_{b}"] for b in sdss.bands])
    cat = catalogue_photometry(images, sdss, fwhm)
    kron = measure_photometry(images, sdss.pixel_scale, sdss.bands,
                              poisson_var_per_flux=sdss["noise"]["poisson_var_per_nmgy"])
    for band in sdss.bands:
        np.testing.assert_array_equal(cat[f"flux_kron_{band}"], kron[f"flux_{band}"])
    true_r = pop["flux"][:, 2]  # total r flux (Galactic extinction applied, as the images)
    # model fluxes hold (nearly) all the light, the Kron aperture misses some; model errors are smaller
    assert np.median(cat["flux_r"] / true_r) > np.median(cat["flux_kron_r"] / true_r)
    assert np.median(cat["flux_err_r"] / cat["flux_kron_err_r"]) < 0.9
    assert set(np.unique(cat["model_type"])) <= {0, 1} and (cat["r_e_model"] > 0).all()

    legacy = load_survey("legacy")
    assert photometry_method(legacy)["method"] == "kron"
    bad = load_survey("sdss")
    bad.params["catalogue_photometry"] = {"method": "psf"}
    with pytest.raises(DeepdipValueError, match="catalogue_photometry.method"):
        photometry_method(bad)
    bad.params["catalogue_photometry"] = {"method": "model", "reference_band": "y"}
    with pytest.raises(DeepdipValueError, match="reference_band 'y'"):
        photometry_method(bad)


def test_model_fit_of_large_knotty_sdss_galaxies_keeps_positive_fluxes():
    """Galaxies 10, 16, 19, 62, 83, 89, 93 and 138 of the seed-1 sdss mock (block 0) got negative model fluxes
    when the neighbour cleaning handed their star-forming knots most of the disk (up to 90 % of the stamp)."""
    from deepdip.photometry.pipeline import catalogue_photometry
    from deepdip.simulate import population, rendering
    from deepdip.surveys import load_survey

    sdss = load_survey("sdss")
    ctx = population.prepare(sdss)
    rng = np.random.default_rng(np.random.SeedSequence([1, 0]))  # simulate_block's stream for seed 1, block 0
    pop = population.sample_population(sdss, 200, rng, ctx)
    images, obs = rendering.render_block(sdss, pop, rng, ctx)
    rows = [10, 16, 19, 62, 83, 89, 93, 138]
    fwhm = np.column_stack([obs[f"psf_fwhm_{b}"] for b in sdss.bands])[rows]
    cat = catalogue_photometry(images[rows], sdss, fwhm)
    assert all((cat[f"flux_{b}"] > 0).all() for b in sdss.bands)
    assert (cat["r_e_model"] < 3 * pop["hlr"][rows]).all()
