"""The mock-survey generator: schema, finite pixels, colours vs redshift, determinism, renderer."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import galsim
import numpy as np
import pytest

from deepdip.cli import main as cli_main
from deepdip.errors import DeepdipError
from deepdip.simulate import BLOCK_SIZE, population, rendering, simulate_store, structure
from deepdip.simulate.calibrate import load_sdss_reference, split_halves
from deepdip.store import CutoutStore, validate_store
from deepdip.surveys import Survey, load_survey

from .conftest import cli_env, real_data


@pytest.fixture(scope="module")
def small_sdss(tmp_path_factory):
    """The sdss preset with 20x20 stamps (fast), as a preset file."""
    params = dict(load_survey("sdss").params, stamp_size=20, name="sdss-small")
    path = tmp_path_factory.mktemp("preset") / "sdss-small.json"
    path.write_text(json.dumps(params))
    return path


@pytest.fixture(scope="module")
def small_store(small_sdss, tmp_path_factory):
    out = tmp_path_factory.mktemp("sim") / "mock.h5"
    simulate_store(str(small_sdss), 60, seed=3, out=out, workers=1, progress=False)
    return out


def test_store_schema_and_pixels(small_store):
    assert validate_store(small_store) == []
    store = CutoutStore(small_store)
    assert len(store) == 60 and store.bands == list("ugriz") and store.image_shape == (20, 20)
    cat = store.catalog()
    assert np.array_equal(cat["z_true"], cat["z_spec"])
    for col in ("ebv", "stellar_mass", "sfr", "hlr", "bulge_frac", "abs_mag_r", "n_neighbours"):
        assert col in cat, col
    for band in "ugriz":
        for col in (f"mag_{band}", f"flux_{band}", f"flux_err_{band}", f"psf_fwhm_{band}"):
            assert np.all(np.isfinite(cat[col])), col
    assert np.all(cat["mag_r"] <= 17.8) and np.all((cat["z_spec"] > 0) & (cat["z_spec"] < 0.4))
    assert np.all(cat["ebv"] > 0) and np.all(cat["stellar_mass"] > 1e8)
    images = store.images(np.arange(60))
    assert images.dtype == np.float32 and np.all(np.isfinite(images))
    # the galaxy is at the centre: the central pixels are brighter than the border in r
    assert np.median(images[:, 2, 8:12, 8:12]) > 10 * np.median(np.abs(images[:, 2, :2, :]))


def test_same_seed_same_store_whatever_the_workers(small_sdss, tmp_path):
    n = BLOCK_SIZE + 10  # two blocks
    one = simulate_store(str(small_sdss), n, seed=9, out=tmp_path / "w1.h5", workers=1, progress=False)
    two = simulate_store(str(small_sdss), n, seed=9, out=tmp_path / "w2.h5", workers=2, progress=False)
    assert one["n"] == two["n"] == n
    a, b = CutoutStore(tmp_path / "w1.h5"), CutoutStore(tmp_path / "w2.h5")
    assert np.array_equal(a.images(np.arange(n)), b.images(np.arange(n)))
    ca, cb = a.catalog(), b.catalog()
    assert sorted(ca) == sorted(cb) and all(np.array_equal(ca[k], cb[k]) for k in ca)
    other = simulate_store(str(small_sdss), 20, seed=10, out=tmp_path / "s10.h5", workers=1, progress=False)
    assert other["n"] == 20 and not np.array_equal(CutoutStore(tmp_path / "s10.h5").column("z_spec"), ca["z_spec"][:20])


def test_unguarded_script_with_workers_fails_fast_and_writes_nothing(small_sdss, tmp_path):
    """Spawned workers re-import a script without a __main__ guard and die: the call must say so, not hang."""
    out = tmp_path / "mock.h5"
    script = tmp_path / "unguarded.py"
    script.write_text("from deepdip.simulate import simulate_store\n"
                      f"simulate_store({str(small_sdss)!r}, 40, seed=1, out={str(out)!r}, workers=2, progress=False)\n")
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "DeepdipError" in proc.stderr and 'if __name__ == "__main__":' in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["unguarded.py"]  # no store, no temporary


def _send_half_a_result(marker: str):
    """In a pool worker: write the header of a 1 MB result and 7 of its bytes, say so, then hang.

    What a worker stopped in the middle of sending a block back leaves in the executor's pipe.
    """
    import struct
    import time

    frame = sys._getframe()
    while "result_queue" not in frame.f_locals:  # concurrent.futures.process._process_worker's queue
        frame = frame.f_back
    writer = frame.f_locals["result_queue"]._writer
    writer._send(struct.pack("!i", 1 << 20) + b"partial")
    with open(marker, "w"):
        pass
    time.sleep(600)


def test_workers_stopped_while_sending_a_result_do_not_hang_the_shutdown(tmp_path):
    """An interrupted run stops its workers; one stopped mid-send must not block the pool's shutdown.

    CPython 3.11's manager thread waits for the rest of the message for ever (the parent holds the
    pipe's write end): a rare hang of `simulate --workers 2` on Ctrl-C under load.
    """
    import threading
    import time

    from deepdip.simulate.pipeline import _start_pool, _stop_workers

    pool, started = _start_pool(1)
    for future in started:
        future.result(timeout=120)
    marker = tmp_path / "sending"
    pool.submit(_send_half_a_result, str(marker))
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert time.monotonic() < deadline, "the worker never started sending"
        time.sleep(0.01)
    _stop_workers(pool)
    shutdown = threading.Thread(target=pool.shutdown, kwargs={"wait": True, "cancel_futures": True}, daemon=True)
    shutdown.start()
    shutdown.join(60)
    assert not shutdown.is_alive(), "the pool's shutdown hangs on the half-sent result"


def test_simulate_store_records_the_one_extinction_law(small_store):
    from deepdip.extinction import EXTINCTION_LAW, extinction_coefficients

    provenance = json.loads(CutoutStore(small_store).attrs["provenance"])
    assert provenance["extinction_law"] == EXTINCTION_LAW
    assert np.allclose(provenance["extinction_coeffs"], extinction_coefficients(load_survey("sdss").filters))


def test_colours_redden_with_redshift():
    survey = load_survey("sdss")
    pop = population.sample_population(survey, 3000, np.random.default_rng(0), population.prepare(survey))
    gr = pop["mag_g"] - pop["mag_r"]
    near, far = pop["z"] < 0.06, pop["z"] > 0.15
    # the 4000 A break moves through g then r: observed g-r grows with z at low redshift
    assert np.median(gr[far]) > np.median(gr[near]) + 0.1
    # the red sequence: a tight ridge of early types
    early = pop["is_early"].astype(bool) & near
    assert 0.6 < np.median(gr[early]) < 1.0 and np.std(gr[early]) < 0.12
    assert np.all(np.isfinite(pop["stellar_mass"])) and np.all(pop["sfr"] >= 0)


def test_deep_preset_population_reaches_high_redshift():
    survey = load_survey("cfhtls-wide")
    pop = population.sample_population(survey, 400, np.random.default_rng(1), population.prepare(survey))
    assert np.all(pop["mag_i"] <= 22.5) and np.quantile(pop["z"], 0.9) > 0.6


def test_fourier_renderer_matches_galsim():
    base = load_survey("sdss")
    # a 96-pixel (38") stamp: these draws hold 3-6" galaxies (u-band sizes up to 8"), whose light on a smaller
    # stamp wraps around the doubled grid at the stamp's edges (the renderer's stated limit, not tested here)
    STAMP = 96  # noqa: N806
    # sizes that change with wavelength (beta = 0.4 +- 0.3), so the per-band half-light radii are checked too
    morph = dict(base["morphology"], size_wavelength_slope={"mean": 0.4, "scatter": 0.3})
    params = dict(base.params, noise={"sky_sigma": [0] * 5, "poisson_var_per_nmgy": [0] * 5},
                  neighbours={"density_arcmin2": 0.0}, morphology=morph)
    survey = Survey(base.name, base.bands, base.filters, base.pixel_scale, STAMP, base.zmin, base.zmax, base.nbins,
                    params)
    ctx = population.prepare(survey)
    pop = population.sample_population(survey, 4, np.random.default_rng(5), ctx)
    images, truth = rendering.render_block(survey, pop, np.random.default_rng(6), ctx)
    size_factor = rendering.size_factors(survey, truth["size_wavelength_slope"], ctx["wave_eff"])
    assert np.all(np.abs(size_factor[:, 0] - 1) > 0.01)  # u differs from r,
    assert np.all(size_factor[:, 2] == 1)  # the reference band
    share, knot_share = structure.shares(pop, survey.bands)
    # the knots' positions: render_block's draws after the seeing (no sky scatter here) and the offsets
    rng = np.random.default_rng(6)
    rng.standard_normal(4), rng.normal(0.0, 0.5, (4, 2))
    knot_xy = structure.knot_positions(pop, survey["morphology"]["n_knots"], rng, ctx["render"]["disk_scale"])
    assert knot_share.min() > 0
    for k in range(4):
        beta = pop["pa"][k] * galsim.degrees
        knots = galsim.Sum([galsim.DeltaFunction(flux=1 / len(knot_xy[k])).shift(*xy) for xy in knot_xy[k]])
        for b in (0, 2):
            hlr = pop["hlr"][k] * size_factor[k, b]
            hb = rendering.BULGE_SIZE_RATIO * hlr
            disk = galsim.Exponential(half_light_radius=hlr).shear(q=pop["q_disk"][k], beta=beta)
            bulge = galsim.DeVaucouleurs(half_light_radius=hb, trunc=rendering.BULGE_TRUNCATION * hb).shear(
                q=pop["q_bulge"][k], beta=beta)
            gal = (1 - share[k, b] - knot_share[k, b]) * disk + share[k, b] * bulge + knot_share[k, b] * knots
            psf = galsim.Kolmogorov(fwhm=truth[f"psf_fwhm_{'ugriz'[b]}"][k])
            ref = (galsim.Convolve(gal, psf) * pop["flux"][k, b]).drawImage(
                nx=STAMP, ny=STAMP, scale=survey.pixel_scale, offset=(truth["offset_x"][k], truth["offset_y"][k])).array
            # 2.0e-3 of the peak at most, 2" off the centre (a star-forming knot, most likely: a point source,
            # undersampled under 0.83" seeing on 0.396" pixels, knot_fraction 0.35 of the disk's light): the
            # renderer keeps the k grid within the pixel's Nyquist band, GalSim folds what lies beyond; 1.1e-3
            # with knot_fraction 0.2, at a de Vaucouleurs cusp, where 10x tighter GalSim accuracy gave the same
            assert np.abs(images[k, b] - ref).max() < 2.5e-3 * ref.max()


def test_a_galaxy_larger_than_the_doubled_grid_holds_is_drawn_on_a_larger_one_without_wrapping():
    # a 7.6" disk of axis ratio 0.2 on a 64-pixel sdss stamp (25"): its wings reach past 1.5 stamps from the
    # centre, where the doubled FFT grid would fold them back onto the stamp (+4-10 % flux); GalSim's drawImage,
    # which sizes its own FFT, is the reference. A small galaxy beside it keeps the doubled grid.
    base = load_survey("sdss")
    morph = dict(base["morphology"], knot_fraction=0.0, n_knots=0, size_wavelength_slope={"mean": 0.0, "scatter": 0.0})
    params = dict(base.params, noise={"sky_sigma": [0] * 5, "poisson_var_per_nmgy": [0] * 5},
                  neighbours={"density_arcmin2": 0.0}, morphology=morph)
    survey = dataclasses.replace(base, params=params)
    ctx = population.prepare(survey)
    pop = population.sample_population(survey, 2, np.random.default_rng(0), ctx)
    pop["hlr"][:] = [7.6, 1.0]
    pop["q_disk"][:] = [0.2, 0.7]
    pop["q_bulge"][:] = [0.3, 0.8]
    images, truth = rendering.render_block(survey, pop, np.random.default_rng(1), ctx)
    fwhm = np.stack([truth[f"psf_fwhm_{b}"] for b in survey.bands], 1)
    offset = np.stack([truth["offset_x"], truth["offset_y"]], 1)
    grids = rendering.grid_sizes(64, survey.pixel_scale, pop["hlr"], pop["q_disk"], pop["q_bulge"], fwhm.max(1), offset)
    assert grids[0] > 128 and grids[1] == 128
    share = structure.shares(pop, survey.bands)[0]
    for k in range(2):
        beta = pop["pa"][k] * galsim.degrees
        for b, band in enumerate(survey.bands):
            hd = pop["hlr"][k]
            hb = rendering.BULGE_SIZE_RATIO * hd
            disk = galsim.Exponential(half_light_radius=hd).shear(q=pop["q_disk"][k], beta=beta)
            bulge = galsim.DeVaucouleurs(half_light_radius=hb, trunc=rendering.BULGE_TRUNCATION * hb).shear(
                q=pop["q_bulge"][k], beta=beta)
            gal = ((1 - share[k, b]) * disk + share[k, b] * bulge) * pop["flux"][k, b]
            ref = galsim.Convolve(gal, galsim.Kolmogorov(fwhm=fwhm[k, b])).drawImage(
                nx=64, ny=64, scale=survey.pixel_scale, offset=tuple(offset[k])).array
            assert abs(images[k, b].sum() / ref.sum() - 1) < 2e-3, (k, band)
            assert np.abs(images[k, b] - ref).max() < 3e-3 * ref.max(), (k, band)


def test_cli(small_sdss, tmp_path):
    out = tmp_path / "cli.h5"
    argv = ["simulate", "--survey", str(small_sdss), "--n", "12", "--seed", "2", "--out", str(out), "--quiet"]
    assert cli_main(argv) == 0
    assert len(CutoutStore(out)) == 12
    assert cli_main(["simulate", "--survey", "nosuchsurvey", "--n", "5", "--out", str(tmp_path / "x.h5")]) == 2
    assert cli_main(["simulate", "--n", "0", "--out", str(tmp_path / "y.h5")]) == 2
    assert not (tmp_path / "y.h5").exists()


def test_conditional_draw_of_a_gaussian_mixture():
    # one component: x3 | (x1, x2) is Gaussian with mean mu3 + S31 S11^-1 (x - mu), var S33 - S31 S11^-1 S13
    p = {"weights": np.array([1.0]), "means": np.array([[0.0, 0.0, 1.0]]),
         "covariances": np.array([[[1.0, 0.0, 0.5], [0.0, 1.0, 0.0], [0.5, 0.0, 1.0]]])}
    x = population._conditional_draw(p, np.tile([[2.0, -1.0]], (20000, 1)), np.random.default_rng(0))
    assert np.mean(x) == pytest.approx(2.0, abs=0.02) and np.var(x) == pytest.approx(0.75, rel=0.05)
    # two far-apart components: the condition picks the component
    p2 = {"weights": np.array([0.5, 0.5]), "means": np.array([[0.0, 0.0, -5.0], [10.0, 10.0, 5.0]]),
          "covariances": np.array([np.eye(3), np.eye(3)])}
    x2 = population._conditional_draw(p2, np.tile([[10.0, 10.0]], (1000, 1)), np.random.default_rng(1))
    assert np.all(x2 > 0)


def test_folder_of_shards(small_sdss, tmp_path):
    simulate_store(str(small_sdss), 30, seed=4, out=tmp_path / "mock", workers=1, progress=False, shard_size=20)
    assert sorted(p.name for p in (tmp_path / "mock").iterdir()) == ["part-00000.h5", "part-00001.h5"]
    store = CutoutStore(tmp_path / "mock")
    assert len(store) == 30 and validate_store(tmp_path / "mock") == []


def test_population_follows_real_sdss():
    """The learned population against the validation half of the real catalogue (skips without it)."""
    ref = load_sdss_reference(real_data("sdss_main_gst10k", "gst_tests_small.fits"))
    _, val = split_halves(len(ref["z"]))
    z_real, mag_real = ref["z"][val], 22.5 - 2.5 * np.log10(np.clip(ref["flux"][val], 1e-3, None))
    survey = load_survey("sdss")
    pop = population.sample_population(survey, 4000, np.random.default_rng(3), population.prepare(survey))
    assert np.median(pop["z"]) == pytest.approx(np.median(z_real), abs=0.01)
    # the population is calibrated through the mock's measurement: its true colours are the real (measured)
    # ones less the measurement's shift, which the population file records (deepdip.simulate.calibrate)
    from deepdip.simulate.calibrate import POPULATION_FILE

    shift = json.loads(POPULATION_FILE.read_text())["measurement"]["median_measured_minus_true"]
    for lo, hi in ((0.03, 0.08), (0.08, 0.15)):
        m, r = (pop["z"] >= lo) & (pop["z"] < hi), (z_real >= lo) & (z_real < hi)
        for band in (1, 2):  # g-r and r-i medians
            a, b = "ugriz"[band], "ugriz"[band + 1]
            mock = np.median(pop[f"mag_{a}"][m] - pop[f"mag_{b}"][m]) + shift[f"{a}-{b}"]
            assert mock == pytest.approx(np.median(mag_real[r, band] - mag_real[r, band + 1]), abs=0.03)


def test_information_floor_regresses_on_the_mock_truths(small_sdss, tmp_path):
    from deepdip.report.floor import information_floor
    from deepdip.train.toydata import make_toy_store

    path = tmp_path / "m300.h5"
    simulate_store(str(small_sdss), 300, seed=5, out=path, workers=1, progress=False)
    store = CutoutStore(path)
    floor = information_floor(store, fold=0)
    assert floor["n_test"] == int((store.column("fold") == 0).sum()) and floor["n_train"] + floor["n_test"] == 300
    for key in ("bayes_true_photometry", "bayes_measured_photometry", "lgbm_true_magnitudes",
                "lgbm_true_magnitudes_morphology"):
        m = floor[key]
        # Noise-free colours of 240 galaxies already place z to a few per cent, far better than a guess.
        assert 0 < m["sigma_mad"] < 0.05 and m["n"] == floor["n_test"]
    # The exact posterior from noise-free magnitudes beats the same posterior given noisy ones.
    assert floor["bayes_true_photometry"]["sigma_mad"] < floor["bayes_measured_photometry"]["sigma_mad"]
    toy = CutoutStore(make_toy_store(tmp_path / "toy.h5", n=50, size=8))
    with pytest.raises(DeepdipError, match="truth column"):
        information_floor(toy)


# --- noise, PSF and stamp size from real pixels (issue 11) -------------------------------------------

def _quiet(survey, **params):
    """``survey`` with ``params`` replaced (a Survey, not a file: the renderer's view of a preset)."""
    merged = dict(survey.params, **params)
    return Survey(survey.name, survey.bands, survey.filters, survey.pixel_scale,
                  merged.get("stamp_size", survey.stamp_size), survey.zmin, survey.zmax, survey.nbins, merged)


def test_ccd_noise_model_gives_the_sigma_of_its_formula_on_blank_stamps():
    base = load_survey("sdss")
    noise = base["noise"]
    assert noise["model"] == "ccd"
    # the preset's two model terms are the psField gain and dark variance with the frame calibration
    field = noise["provenance"]["field_2583_2_136"]
    calib, gain, dark = (np.asarray(field[k]) for k in ("nmgy_per_count", "gain", "dark_variance"))
    assert np.allclose(noise["poisson_var_per_nmgy"], calib / gain, rtol=1e-3)
    assert np.allclose(noise["dark_variance_nmgy2"], calib**2 * dark, rtol=1e-3)
    survey = _quiet(base, stamp_size=32, noise=dict(noise, sky_mag_scatter=0.0), neighbours={"density_arcmin2": 0.0})
    ctx = population.prepare(survey)
    pop = population.sample_population(survey, 40, np.random.default_rng(1), ctx)
    pop["flux"][:] = 0.0  # blank sky
    images, _ = rendering.render_block(survey, pop, np.random.default_rng(2), ctx)
    # the frame data model: sigma = calib * sqrt(sky_counts / gain + darkVariance), sky from mag/arcsec^2
    sky_counts = 10 ** (-0.4 * (np.asarray(noise["sky_mag_arcsec2"]) - 22.5)) * 0.396**2 / calib
    expected = calib * np.sqrt(sky_counts / gain + dark)
    assert np.allclose(images.std(axis=(0, 2, 3)), expected, rtol=0.02)
    assert np.allclose(rendering.sky_sigma(survey, 3), expected[None, :], rtol=1e-4)
    # a sky 0.5 mag brighter: more noise, as the formula says
    brighter = rendering.sky_sigma(survey, 1, sky_offset_mag=np.array([-0.5]))[0]
    assert np.allclose(brighter, calib * np.sqrt(sky_counts * 10**0.2 / gain + dark), rtol=1e-4)


def test_sky_and_seeing_follow_the_published_sdss_quartiles():
    survey = load_survey("sdss")
    obs = rendering.observing_conditions(survey, 20000, np.random.default_rng(3))
    noise = survey["noise"]
    var = obs["sky_sigma"][:, 2].astype(np.float64) ** 2
    sky = (var - noise["dark_variance_nmgy2"][2]) / noise["poisson_var_per_nmgy"][2]
    mu = 22.5 - 2.5 * np.log10(sky / survey.pixel_scale**2)
    # SDSS DR7 "Seeing and sky brightness", r band: sky 20.70 / 20.86 / 21.03 mag/arcsec^2
    assert np.allclose(np.percentile(mu, [25, 50, 75]), [20.70, 20.86, 21.03], atol=0.01)
    # every band's sky moves with r (one field, one sky)
    assert np.corrcoef(obs["sky_sigma"][:, 0], obs["sky_sigma"][:, 4])[0, 1] > 0.95
    # psf_width (effective width) 1.30 / 1.43 / 1.58 arcsec: the rendered Kolmogorov PSF's effective width
    fwhm_r = np.percentile(obs["psf_fwhm"][:, 2], [25, 50, 75])
    widths = [rendering.psf_widths(rendering.psf_image(f, survey.pixel_scale, 64), survey.pixel_scale)["effective"]
              for f in fwhm_r]
    assert np.allclose(widths, [1.30, 1.43, 1.58], rtol=0.015)


def test_rendered_psf_fwhm_matches_the_drawn_seeing():
    base = load_survey("sdss")
    survey = _quiet(base, stamp_size=32, centre_offset_px=0.0, neighbours={"density_arcmin2": 0.0},
                    noise={"sky_sigma": [0.0] * 5, "poisson_var_per_nmgy": [0.0] * 5})
    ctx = population.prepare(survey)
    pop = population.sample_population(survey, 6, np.random.default_rng(4), ctx)
    pop["hlr"][:] = 1e-3  # point sources: the image is the PSF
    for band in survey.bands:  # and no knots, which would scatter its light by ~1e-3"
        pop[f"knot_share_{band}"][:] = 0.0
    images, truth = rendering.render_block(survey, pop, np.random.default_rng(5), ctx)
    for k in range(6):
        for b, band in enumerate(survey.bands):
            fwhm = truth[f"psf_fwhm_{band}"][k]
            measured = rendering.psf_widths(images[k, b], survey.pixel_scale)["fwhm"]
            ref = galsim.Kolmogorov(fwhm=float(fwhm)).drawImage(nx=32, ny=32, scale=survey.pixel_scale).array
            assert measured == pytest.approx(rendering.psf_widths(ref, survey.pixel_scale)["fwhm"], rel=0.01)
            assert measured == pytest.approx(fwhm, rel=0.1)  # the pixel widens it by a few per cent
            assert np.allclose(images[k, b] / pop["flux"][k, b], rendering.psf_image(fwhm, survey.pixel_scale, 32),
                               atol=1e-5)


def test_psf_widths_of_a_gaussian():
    img = galsim.Gaussian(fwhm=2.0).drawImage(nx=65, ny=65, scale=0.1, method="no_pixel").array
    widths = rendering.psf_widths(img, 0.1)
    assert widths["fwhm"] == pytest.approx(2.0, rel=0.01) and widths["effective"] == pytest.approx(2.0, rel=0.01)


def test_legacy_23_preset_gives_23_pixel_stamps_centred_on_the_central_pixel(tmp_path):
    legacy, small = load_survey("legacy"), load_survey("legacy-23")
    assert small.stamp_size == 23 and small.name == "legacy-23" and small.bands == legacy.bands
    assert {k: v for k, v in small.params.items() if k not in ("name", "stamp_size", "description")} == \
        {k: v for k, v in legacy.params.items() if k not in ("name", "stamp_size", "description")}
    out = tmp_path / "l23.h5"
    simulate_store("legacy-23", 12, seed=1, out=out, workers=1, progress=False)
    store = CutoutStore(out)
    assert store.image_shape == (23, 23) and store.bands == list("griz") and validate_store(out) == []
    # an odd stamp is centred on its central pixel, as GalSim centres it (and as the real cutouts are)
    survey = _quiet(small, centre_offset_px=0.0, neighbours={"density_arcmin2": 0.0},
                    noise={"sky_sigma": [0.0] * 4, "poisson_var_per_nmgy": [0.0] * 4})
    ctx = population.prepare(survey)
    pop = population.sample_population(survey, 3, np.random.default_rng(6), ctx)
    pop["hlr"][:] = 1e-3
    images, truth = rendering.render_block(survey, pop, np.random.default_rng(7), ctx)
    for k in range(3):
        assert np.unravel_index(np.argmax(images[k, 1]), (23, 23)) == (11, 11)
        ref = galsim.Kolmogorov(fwhm=float(truth["psf_fwhm_r"][k])).drawImage(nx=23, ny=23, scale=0.262).array
        assert np.abs(images[k, 1] / pop["flux"][k, 1] - ref).max() < 1e-3 * ref.max()


def test_a_preset_extends_another_by_name(tmp_path):
    from deepdip.errors import DeepdipValueError

    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"extends": "sdss", "name": "sdss-48", "stamp_size": 48}))
    mine = load_survey(path)
    assert mine.stamp_size == 48 and mine.bands == tuple("ugriz") and mine["noise"] == load_survey("sdss")["noise"]
    # nested objects merge key by key: one population setting changes, the rest stays the base's
    path.write_text(json.dumps({"extends": "cfhtls-wide", "name": "faint", "population": {"m_lim_B": 27.0}}))
    faint, deep = load_survey(path), load_survey("cfhtls-wide")
    assert faint["population"]["m_lim_B"] == 27.0 and faint["population"]["blue"] == deep["population"]["blue"]
    path.write_text(json.dumps({"extends": "nosuchpreset", "name": "x"}))
    with pytest.raises(DeepdipValueError, match="nosuchpreset"):
        load_survey(path)
    path.write_text(json.dumps({"extends": "mine", "name": "x"}))  # no package preset of that name
    with pytest.raises(DeepdipValueError, match="extends"):
        load_survey(path)


def test_a_population_refitted_on_a_stores_labelled_galaxies_generates_the_faint_gap(small_store, tmp_path):
    """Issue 13's honest generator: the mixture fitted on a store's bright galaxies, named by a preset file
    relative to it, drawn only fainter than ``mag_bright_limit``; the mock records that mixture's digest."""
    import hashlib

    from deepdip.simulate.calibrate import fit_population, reference_from_store
    from deepdip.surveys import check_simulatable

    store = CutoutStore(small_store)
    bright = np.flatnonzero(store.column("mag_r") < 17.3)
    ref = reference_from_store(store, bright)
    assert np.all(np.isfinite(ref["flux"])) and np.all(ref["z"] == store.column("z_spec")[bright])
    params = fit_population(ref, np.arange(len(bright)), max_components=4, source={"source": "test store"})
    assert params["source"] == "test store" and params["n_fit"] == len(bright)
    (tmp_path / "pop.json").write_text(json.dumps(params))
    preset = tmp_path / "gap.json"
    preset.write_text(json.dumps({"extends": "sdss", "name": "gap", "stamp_size": 20, "mag_bright_limit": 17.3,
                                  "population": {"file": "pop.json"}}))
    survey = load_survey(preset)
    assert survey["population"]["file"] == str((tmp_path / "pop.json").resolve())
    assert survey["population"]["model"] == "gmm"  # the rest of sdss's population block is kept
    out = tmp_path / "gap.h5"
    simulate_store(str(preset), 12, seed=5, out=out, workers=1, progress=False)
    gap = CutoutStore(out)
    assert np.all(gap.column("mag_r") > 17.3) and np.all(gap.column("mag_r") <= 17.8)
    digest = hashlib.sha256((tmp_path / "pop.json").read_bytes()).hexdigest()
    assert gap.provenance["population_sha256"] == digest

    preset.write_text(json.dumps({"extends": "sdss", "name": "gap", "mag_bright_limit": 18.0}))
    with pytest.raises(DeepdipError, match="mag_bright_limit"):
        check_simulatable(load_survey(preset))
    with pytest.raises(DeepdipError, match="population file"):
        population.population_file(str(tmp_path / "none.json"))


def test_sdss_noise_model_predicts_the_real_frame(tmp_path):
    """The calibrated model at the real field's own sky against its blank patches (skips without the frames)."""
    from astropy.io import fits

    frames = real_data("sdss_frames_stripe82")
    with fits.open(frames / "frame-r-002583-2-0136.fits.bz2") as f:
        img, calib, sky = f[0].data, float(np.median(f[1].data)), float(np.median(f[2].data["ALLSKY"][0]))
    survey = load_survey("sdss")
    mu = 22.5 - 2.5 * np.log10(sky * calib / 0.396**2)
    offset = np.array([mu - survey["noise"]["sky_mag_arcsec2"][2]])
    predicted = rendering.sky_sigma(survey, 1, sky_offset_mag=offset)[0, 2]
    patches = [img[y:y + 64, x:x + 64] for y in range(100, 1489 - 164, 100) for x in range(100, 2048 - 164, 100)]
    blank = np.percentile([1.4826 * np.median(np.abs(p - np.median(p))) for p in patches], 25)
    assert predicted == pytest.approx(blank, rel=0.1)


# --- internal colour structure: bulge, disk and knots with their own SEDs (issue 11) ----------------

def _split(kappa, knot_fraction=0.2, n=60, seed=4):
    from deepdip.simulate import structure

    survey = load_survey("sdss")
    ctx = population.prepare(survey)
    rng = np.random.default_rng(seed)
    coeffs = rng.gamma(0.5, 1.0, (n, 5)) * 1e9
    coeffs[rng.uniform(size=(n, 5)) < 0.2] = 0.0  # NNLS fits leave some templates out
    coeffs[:, 3] += 1e8  # at least one template in every galaxy
    z, bulge_frac = rng.uniform(0.01, 0.4, n), rng.uniform(0.02, 0.95, n)
    parts = structure.split(coeffs, z, bulge_frac, ctx["survey"], 2, ctx["rest_maggies"], kappa, knot_fraction)
    return parts, coeffs, z, bulge_frac, ctx


def _with_slope(survey, slope, **params):
    morph = {k: v for k, v in survey["morphology"].items() if k != "size_wavelength_slope"}
    if slope is not None:
        morph["size_wavelength_slope"] = {"mean": slope[0], "scatter": slope[1]}
    return dataclasses.replace(survey, stamp_size=40, params=dict(survey.params, morphology=morph, **params))


def _render(survey, n=40, seed=8):
    ctx = population.prepare(survey)
    pop = population.sample_population(survey, n, np.random.default_rng(seed), ctx)
    return rendering.render_block(survey, pop, np.random.default_rng(seed + 1), ctx), pop, ctx


def test_size_wavelength_slope_moves_light_within_the_bands_it_changes_and_keeps_the_random_stream():
    base = load_survey("sdss")
    (flat, _), _, _ = _render(_with_slope(base, (0.0, 0.0)))
    (sloped, truth), pop, ctx = _render(_with_slope(base, (0.5, 0.3)))
    slope = truth["size_wavelength_slope"]
    assert np.std(slope) > 0.1 and abs(np.mean(slope) - 0.5) < 0.15
    # the reference band's pixels, noise included, are those of the same galaxies without the slope: the
    # slope's one draw per galaxy leaves every other random number where it was (sdss-flat relies on it).
    # Exactly, but for galaxies whose larger blue sizes move them to a larger FFT grid (rendering.grid_sizes):
    # their r band differs by what the doubled grid folded back, a few % of the sky sigma at most (a
    # different noise draw would move pixels by ~1.4 sigma)
    moved = np.abs(flat[:, 2] - sloped[:, 2]).max((1, 2))
    assert (moved == 0).mean() > 0.6
    assert moved.max() < 0.05 * rendering.sky_sigma(base, 1)[0, 2]
    # bluewards a positive slope spreads the light: less of it in the central pixels, the total unchanged
    noise_free = {"noise": {"sky_sigma": [0] * 5, "poisson_var_per_nmgy": [0] * 5},
                  "neighbours": {"density_arcmin2": 0}}
    (clean_flat, _), _, _ = _render(_with_slope(base, (0.0, 0.0), **noise_free))
    (clean, _), _, _ = _render(_with_slope(base, (0.5, 0.3), **noise_free))
    factor = rendering.size_factors(base, slope, ctx["wave_eff"])
    centre = (slice(None), 1, slice(17, 23), slice(17, 23))  # g band, central 6 x 6 pixels
    peak_ratio = clean[centre].sum((1, 2)) / clean_flat[centre].sum((1, 2))
    larger = factor[:, 1] > 1.05
    assert larger.sum() > 10 and np.all(peak_ratio[larger] < 1)
    small = pop["hlr"] * factor.max(1) < 1.0  # light well inside the 40-pixel stamp
    assert np.allclose(clean[small].sum((2, 3)), clean_flat[small].sum((2, 3)), rtol=0.02)
    # without the key nothing is drawn: the noise-free images equal the zero-slope ones exactly
    (no_key, truth0), _, _ = _render(_with_slope(base, None, **noise_free))
    assert np.array_equal(no_key, clean_flat) and np.all(truth0["size_wavelength_slope"] == 0)


def test_sdss_flat_draws_the_same_random_numbers_as_sdss():
    flat, sdss = load_survey("sdss-flat"), load_survey("sdss")
    assert flat["morphology"]["size_wavelength_slope"] == {"mean": 0.0, "scatter": 0.0}
    assert "size_wavelength_slope" in sdss["morphology"]


@pytest.mark.parametrize("kappa", [0.0, 1.5])
def test_colour_structure_keeps_the_totals_and_the_bulge_fraction(kappa):
    parts, coeffs, z, bulge_frac, ctx = _split(kappa)
    for key in ("bulge", "disk", "knots"):
        assert np.all(parts[key] >= 0), key
    assert np.allclose(parts["bulge"] + parts["disk"] + parts["knots"], coeffs, rtol=1e-12, atol=0)
    table = ctx["survey"]
    total = table.fluxes(coeffs, z)
    summed = sum(table.fluxes(parts[key], z) for key in ("bulge", "disk", "knots"))
    assert np.allclose(summed, total, rtol=1e-6, atol=0)
    assert np.allclose(parts["bulge_share"][:, 2], bulge_frac, rtol=0, atol=1e-9)  # r: the drawn bulge fraction
    # the knots carry knot_fraction of the disk's r flux
    assert np.allclose(parts["knot_share"][:, 2], 0.2 * (1 - bulge_frac), rtol=0, atol=1e-9)


def test_without_contrast_bulge_disk_and_knots_share_one_sed():
    parts, _, _, bulge_frac, _ = _split(0.0)
    assert np.allclose(parts["bulge_share"], bulge_frac[:, None], atol=1e-9)  # the same share in every band
    assert np.allclose(parts["bulge_rest_u_r"], parts["disk_rest_u_r"], atol=1e-9)


def test_bulges_are_redder_and_knots_bluer_than_disks_at_every_redshift():
    from deepdip.simulate import structure

    parts, coeffs, _, bulge_frac, ctx = _split(1.0, n=40)
    for z in (0.01, 0.1, 0.2, 0.3, 0.4):
        zz = np.full(len(coeffs), z)
        s = structure.split(coeffs, zz, bulge_frac, ctx["survey"], 2, ctx["rest_maggies"], 1.0, 0.2)
        flux = {key: ctx["survey"].fluxes(s[key], zz) for key in ("bulge", "disk", "knots")}
        flux["whole disk"] = flux["disk"] + flux["knots"]
        mixed = (coeffs > 0).sum(1) >= 2  # a single template has a single colour
        for a, b in ((0, 1), (1, 2)):  # u-g and g-r: the template order in rest u-r holds there at every z
            colour = {key: -2.5 * np.log10(f[:, a] / f[:, b]) for key, f in flux.items()}
            assert np.all(colour["bulge"][mixed] > colour["whole disk"][mixed] + 1e-6), (z, a)
            assert np.all(colour["knots"][mixed] < colour["disk"][mixed] - 1e-6), (z, a)
    assert np.all(parts["bulge_rest_u_r"] >= parts["disk_rest_u_r"] - 1e-9)


def test_population_carries_the_per_band_shares_and_they_are_truths():
    from deepdip.simulate.truths import truth_columns

    survey = load_survey("sdss")
    pop = population.sample_population(survey, 50, np.random.default_rng(2), population.prepare(survey))
    assert np.allclose(pop["bulge_share_r"], pop["bulge_frac"], atol=1e-9)
    kappa = survey["morphology"]["bulge_disk_contrast"]
    assert kappa > 0 and np.median(pop["bulge_share_g"] - pop["bulge_share_i"]) < 0  # bulges are red
    truths = truth_columns(survey.bands)
    for key in pop:
        if key not in ("z", "ebv", "flux") and not key.startswith("mag_"):
            assert key in truths, key


def test_dask_cluster_writes_the_same_store_as_local_workers(small_sdss, tmp_path):
    """``dask=``: one task per block on a real LocalCluster (loopback), a folder of shards identical
    to the one local workers write for the same seed; the CLI's ``--dask local:N`` too."""
    distributed = pytest.importorskip("distributed")
    n = 2 * BLOCK_SIZE + 10  # three blocks, the last one short
    local = tmp_path / "local"
    simulate_store(str(small_sdss), n, seed=4, out=local, workers=1, progress=False, shard_size=150)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        with distributed.get_task_stream(client=client) as stream:
            info = simulate_store(str(small_sdss), n, seed=4, out=tmp_path / "dask", progress=False,
                                  shard_size=150, dask=client)
    assert info["n"] == n
    assert len([t for t in stream.data if str(t["key"]).startswith("deepdip-simulate")]) == 3
    a, b = CutoutStore(local), CutoutStore(tmp_path / "dask")
    assert np.array_equal(a.images(np.arange(n)), b.images(np.arange(n)))
    ca, cb = a.catalog(), b.catalog()
    assert sorted(ca) == sorted(cb) and all(np.array_equal(ca[k], cb[k]) for k in ca)
    assert sorted(p.name for p in (tmp_path / "dask").iterdir()) == sorted(p.name for p in local.iterdir())

    res = subprocess.run([sys.executable, "-m", "deepdip", "simulate", "--survey", str(small_sdss), "--n", "30",
                          "--seed", "4", "--out", str(tmp_path / "cli.h5"), "--dask", "local:1", "--quiet"],
                         capture_output=True, text=True, env=cli_env())
    assert res.returncode == 0, res.stderr
    assert "Dask local:1" in res.stdout
    simulate_store(str(small_sdss), 30, seed=4, out=tmp_path / "ref.h5", workers=1, progress=False)
    assert np.array_equal(CutoutStore(tmp_path / "cli.h5").images(np.arange(30)),
                          CutoutStore(tmp_path / "ref.h5").images(np.arange(30)))
    assert cli_main(["simulate", "--survey", str(small_sdss), "--n", "30", "--out", str(tmp_path / "x.h5"),
                     "--dask", "local:1", "--workers", "2"]) == 2
    assert not (tmp_path / "x.h5").exists()


def test_preset_missing_bands_masks_galaxies_and_leaves_the_rest_unchanged(small_sdss, tmp_path):
    params = json.loads(small_sdss.read_text())
    masked = tmp_path / "masked.json"
    masked.write_text(json.dumps({**params, "missing_bands": {"u": 0.3, "z": 0.1}}))
    simulate_store(str(masked), 80, seed=5, out=tmp_path / "m.h5", progress=False)
    simulate_store(str(small_sdss), 80, seed=5, out=tmp_path / "full.h5", progress=False)
    m, full = CutoutStore(tmp_path / "m.h5"), CutoutStore(tmp_path / "full.h5")
    mask = m.band_mask()
    assert validate_store(tmp_path / "m.h5") == [] and not full.has_band_mask
    assert 0.15 < 1 - mask[:, 0].mean() < 0.45 and mask[:, 1:4].all() and 0 < (~mask[:, 4]).sum() < 25
    images, reference = m.images(), full.images()
    assert np.all(images[~mask] == 0) and np.array_equal(images[mask], reference[mask])  # same galaxies and noise
    assert np.isnan(m.column("flux_u")[~mask[:, 0]]).all() and np.isfinite(m.column("flux_u")[mask[:, 0]]).all()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**params, "missing_bands": {"y": 0.5}}))
    with pytest.raises(DeepdipError, match="missing_bands must map its bands"):
        simulate_store(str(bad), 10, seed=1, out=tmp_path / "bad.h5", progress=False)
    assert not (tmp_path / "bad.h5").exists()


def test_calibration_through_the_measurement_removes_the_mocks_measurement_bias():
    """A mock whose measurement reddens g-r by 0.05 mag (and brightens r by 0.03): the population fitted
    through that measurement has its g-r 0.05 bluer and its r 0.03 fainter than one fitted on the real
    features as they are."""
    from deepdip.simulate.calibrate import FEATURES, MeasurementBias, fit_population

    rng = np.random.default_rng(0)
    n = 3000
    true = np.column_stack([rng.uniform(0.02, 0.2, n), rng.uniform(14, 17.7, n), rng.normal(1.5, 0.3, n),
                            rng.normal(0.7, 0.1, n), rng.normal(0.35, 0.05, n), rng.normal(0.3, 0.05, n)])
    shift = np.zeros(6)
    shift[FEATURES.index("g-r")], shift[FEATURES.index("r")] = 0.05, -0.03
    measured = true + shift + rng.normal(0, 0.01, true.shape) * [0, 1, 1, 1, 1, 1]
    bias = MeasurementBias(true, measured, k=100)
    assert np.allclose(bias.predict(true[:50]), shift, atol=0.004)
    assert bias.summary["median_measured_minus_true"]["g-r"] == pytest.approx(0.05, abs=0.002)
    # "real" galaxies: fluxes whose features are the measured ones of another draw
    z, r, ug, gr, ri, iz = (true[:, j] for j in range(6))
    mag = np.column_stack([r + gr + ug, r + gr, r, r - ri, r - ri - iz]) + shift[1]
    mag[:, :2] += shift[3]  # g-r redder: u and g fainter together
    flux = 10 ** (-0.4 * (mag - 22.5))
    ref = {"z": z, "flux": flux, "flux_err": 1e-3 * flux}
    rows = np.arange(n)
    plain = fit_population(ref, rows, max_components=4)
    through = fit_population(ref, rows, max_components=4, measurement=bias)
    mean = lambda p: np.average(np.asarray(p["means"]), axis=0, weights=p["weights"])  # noqa: E731
    delta = mean(through) - mean(plain)
    assert delta[FEATURES.index("g-r")] == pytest.approx(-0.05, abs=0.005)
    assert delta[FEATURES.index("r")] == pytest.approx(0.03, abs=0.005)
    assert "measurement" in through and "measurement" not in plain


def test_local_dask_workers_keep_glibc_memory_defaults(monkeypatch):
    """Dask gives its workers MALLOC_TRIM_THRESHOLD_=65536, which made a simulated block take 1.9x the
    CPU time it takes in-process (every large array a fresh mmap); the ``local:N`` cluster deepdip
    makes leaves it unset, like the process pool's workers, and leaves the caller's Dask config alone."""
    dask = pytest.importorskip("dask")
    pytest.importorskip("distributed")
    import os

    from deepdip._dask import NO_TRIM_KEY, dask_client

    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    before = dask.config.get(NO_TRIM_KEY, None)
    with dask_client("local:1") as client:
        env = client.run(lambda: dict(os.environ))
    (worker_env,) = env.values()
    assert "MALLOC_TRIM_THRESHOLD_" not in worker_env and worker_env["OMP_NUM_THREADS"] == "1"
    assert dask.config.get(NO_TRIM_KEY, None) == before     # Dask's own setting, outside deepdip's cluster
