"""The catalogue photometry a survey's pipeline writes, measured on cutouts: what mock catalogues hold.

A preset's ``catalogue_photometry`` says which measurement its catalogue's ``flux_<band>`` /
``flux_err_<band>`` are (what baselines read, and what real catalogues of that survey publish):

- ``{"method": "kron"}`` (the default): Kron apertures matched across bands
  (:func:`deepdip.photometry.measure_photometry`, SExtractor's ``FLUX_AUTO``);
- ``{"method": "model", "reference_band": "r"}``: SDSS model fluxes (:func:`deepdip.photometry.model_fluxes`:
  the better of an exponential and a de Vaucouleurs fit in the reference band, amplitudes per band),
  on the stamps with neighbours replaced as for the apertures, through each cutout's PSF. The
  apertures are kept as ``flux_kron_<band>``; ``model_type`` (0 exp, 1 deV), ``r_e_model`` (arcsec)
  and ``q_model`` are added. SDSS's photo-z catalogues (and Pasquet et al.'s baselines) use model
  magnitudes: a mock measured with apertures would give its baselines 1.1-2.6x the real flux errors
  (docs/realism.md).

The sizes and shapes (``hlr_meas``, ``kron_radius``, ``q_meas``) and the 3" aperture fluxes are
measured in both cases.
"""

from __future__ import annotations

import numpy as np

from deepdip.errors import DeepdipValueError
from deepdip.photometry.measure import measure_photometry
from deepdip.photometry.sdss import model_fluxes

METHODS = ("kron", "model")


def photometry_method(survey) -> dict:
    """The preset's ``catalogue_photometry`` with its defaults, checked (a bad value names the key)."""
    spec = dict(survey.get("catalogue_photometry", {}) or {})
    method = spec.get("method", "kron")
    if method not in METHODS:
        raise DeepdipValueError(f"survey preset {survey.name!r}: catalogue_photometry.method must be one of "
                                f"{', '.join(METHODS)}, got {method!r}")
    spec["method"] = method
    if method == "model":
        ref = spec.setdefault("reference_band", "r" if "r" in survey.bands else survey.bands[0])
        if ref not in survey.bands:
            raise DeepdipValueError(f"survey preset {survey.name!r}: catalogue_photometry.reference_band {ref!r} "
                                    f"is not one of its bands {list(survey.bands)}")
    return spec


def describe(survey) -> str:
    """One line for a store's provenance: which measurement ``flux_<band>`` holds."""
    spec = photometry_method(survey)
    if spec["method"] == "model":
        return ("flux_<band>: SDSS model fluxes (deepdip.photometry.model_fluxes, shape from "
                f"{spec['reference_band']}); "
                "flux_kron_<band>: Kron 2.5 matched apertures (deepdip.photometry.measure_photometry)")
    return "flux_<band>: Kron 2.5 matched apertures (deepdip.photometry.measure_photometry)"


def catalogue_photometry(images: np.ndarray, survey, psf_fwhm: np.ndarray) -> dict:
    """Catalogue columns of cutouts [n, B, S, S] of ``survey`` (a :class:`deepdip.surveys.Survey`)
    observed through Kolmogorov PSFs of FWHM ``psf_fwhm`` [n, B] (arcsec; the mock's PSFs)."""
    spec = photometry_method(survey)
    poisson = survey["noise"]["poisson_var_per_nmgy"]
    if spec["method"] == "kron":
        return measure_photometry(images, survey.pixel_scale, survey.bands, poisson_var_per_flux=poisson)
    cleaned = np.empty(images.shape, dtype=np.float32)
    cat = measure_photometry(images, survey.pixel_scale, survey.bands, poisson_var_per_flux=poisson,
                             cleaned_out=cleaned)
    model = model_fluxes(cleaned, None, survey.pixel_scale, list(survey.bands).index(spec["reference_band"]),
                         poisson_var_per_flux=poisson, psf_fwhm=psf_fwhm)
    for b, band in enumerate(survey.bands):
        cat[f"flux_kron_{band}"], cat[f"flux_kron_err_{band}"] = cat[f"flux_{band}"], cat[f"flux_err_{band}"]
        cat[f"flux_{band}"] = model["flux"][:, b].astype(np.float32)
        cat[f"flux_err_{band}"] = model["flux_err"][:, b].astype(np.float32)
    cat["model_type"] = model["model_type"].astype(np.int8)
    cat["r_e_model"], cat["q_model"] = model["r_e"].astype(np.float32), model["q"].astype(np.float32)
    return cat
