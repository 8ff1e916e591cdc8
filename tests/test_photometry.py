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
