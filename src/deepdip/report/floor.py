"""How much redshift information a mock's galaxies carry: the floor under any estimator.

An estimator working from the pixels can beat catalogue photometry only by using information the
catalogue lacks, and nothing can beat the information the galaxies carry. A mock is built from
known quantities, so both are measurable on its test fold:

* **Bayes floors** (``gmm`` populations, e.g. ``sdss``): the mock draws (z, r, colours) from a
  Gaussian mixture, so p(z | magnitudes) is known exactly, a mixture of 1-D Gaussians (for
  measured photometry, the mixture convolved with each galaxy's errors). Its median is the best
  point estimate any method could make from those magnitudes with unlimited training data.
  ``bayes_true_photometry`` uses the noise-free magnitudes, ``bayes_measured_photometry`` the
  store's measured fluxes and errors (Gaussian magnitude errors about the *true* magnitudes). The
  latter is a floor only for unbiased photometry: a measurement whose colours differ from the
  true total colours (model fits of galaxies with colour gradients weigh their red centres; Kron
  apertures miss outer light) makes that likelihood wrong, and a learner trained on the measured
  fluxes can then do better than this "floor" (it learns the measurement's offsets).
* **Learner floors**: LightGBM with the ``boost`` baseline's settings, trained on the other
  folds' truths (noise-free magnitudes; plus the true size, bulge fraction and axis ratio the
  images were drawn from): what a good learner reaches at this training size.

They need truth columns, so they are diagnostics of mocks, never estimators: reference lines
beside the methods, not competitors. Morphology is not in the Bayes floors; the learner rows show
how much it adds.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deepdip import metrics
from deepdip.errors import DeepdipError
from deepdip.photometry.units import flux_to_mag

MORPHOLOGY = ("hlr", "bulge_frac", "q_disk")   # what the renderer draws besides the SED
GMM_FEATURES = ["z", "r", "u-g", "g-r", "r-i", "i-z"]


def truth_features(cat: dict, bands, ref_band: str, morphology: bool) -> np.ndarray:
    """``[ref magnitude, adjacent colours (, log10 hlr, bulge fraction, axis ratio)]`` from truths."""
    mag = np.stack([np.asarray(cat[f"mag_{b}"], dtype=np.float64) for b in bands], axis=1)
    parts = [mag[:, [list(bands).index(ref_band)]], mag[:, :-1] - mag[:, 1:]]
    if morphology:
        parts.append(np.stack([np.log10(cat["hlr"]), cat["bulge_frac"], cat["q_disk"]], axis=1))
    return np.concatenate(parts, axis=1)


def _point(zp, z) -> dict:
    return {"sigma_mad": metrics.sigma_mad(zp, z), "outlier_frac": metrics.outlier_frac(zp, z),
            "bias": metrics.bias(zp, z), "n": int(len(z))}


def information_floor(store, fold: int = 0, *, gmm: dict | None = None, seed: int = 0, n_jobs: int = 1) -> dict:
    """Floors on the test ``fold`` of a mock store (see the module docstring for each key).

    ``gmm``: the population mixture the store was drawn from (as in ``deepdip/data``); default:
    the store's survey preset's, checked against the digest in the store's provenance (the Bayes
    rows are left out when the store records another population or none).
    Raises :class:`DeepdipError` for a store without the truth columns of a deepdip mock.
    """
    bands = list(store.bands)
    ref_band = "r" if "r" in bands else bands[len(bands) // 2]
    needed = ["z_spec", "fold", *MORPHOLOGY, *(f"mag_{b}" for b in bands)]
    missing = [c for c in needed if c not in store.columns]
    if missing:
        raise DeepdipError(f"store {store.path} lacks the mock truth column(s) {', '.join(missing)}: "
                           "the information floor is defined for deepdip mocks only")
    cat = store.catalog(needed)
    test = np.asarray(cat["fold"]) == fold
    z = np.asarray(cat["z_spec"], dtype=np.float64)
    out: dict[str, Any] = {"n_train": int((~test).sum()), "n_test": int(test.sum())}

    gmm = gmm if gmm is not None else _store_gmm(store)
    if gmm is not None and bands == ["u", "g", "r", "i", "z"]:
        mag = truth_features(cat, bands, "r", morphology=False)[test]           # r, u-g, g-r, r-i, i-z
        out["bayes_true_photometry"] = _point(posterior_median(gmm, mag, np.zeros((len(mag), 5, 5))), z[test])
        cond, err = _measured_colours(store, np.flatnonzero(test))
        out["bayes_measured_photometry"] = _point(posterior_median(gmm, cond, err), z[test])

    from deepdip.baselines.boost import BoostedTreesBaseline

    learner = BoostedTreesBaseline(seed=seed, n_jobs=n_jobs)
    for key, morphology in (("lgbm_true_magnitudes", False), ("lgbm_true_magnitudes_morphology", True)):
        x = truth_features(cat, bands, ref_band, morphology)
        # The boost baseline's own regressor: the gap to that baseline is information, not learner.
        out[key] = _point(learner.booster().fit(x[~test], z[~test]).predict(x[test]), z[test])
    return out


def _store_gmm(store) -> dict | None:
    """The mixture the store was drawn from, if its provenance names one that is still shipped unchanged."""
    from deepdip.simulate.population import _gmm_params, population_digest

    prov = store.provenance
    preset = prov.get("survey_preset") or {}
    pop = preset.get("population") or {}
    if pop.get("model") != "gmm" or not prov.get("population_sha256"):
        return None
    if prov["population_sha256"] != population_digest(preset):
        return None   # drawn from another version of the population
    p = _gmm_params(pop["file"])
    return p if list(p.get("features", GMM_FEATURES)) == GMM_FEATURES else None


def _measured_colours(store, rows) -> tuple[np.ndarray, np.ndarray]:
    """Measured, dereddened (r, u-g, g-r, r-i, i-z) and their error covariance ``[n, 5, 5]``."""
    from deepdip.photometry import Photometry

    flux, err = Photometry.from_store(store, rows=rows).dereddened()
    flux = np.where(flux > 0, flux, np.nan)
    mag = flux_to_mag(flux)
    sig = 2.5 / np.log(10) * err / flux
    # A non-detection becomes a magnitude with a huge error: no information, no crash.
    bad = ~np.isfinite(mag) | ~np.isfinite(sig)
    mag, sig = np.where(bad, 20.0, mag), np.where(bad, 1e3, sig)
    jac = np.array([[0, 0, 1, 0, 0], [1, -1, 0, 0, 0], [0, 1, -1, 0, 0], [0, 0, 1, -1, 0], [0, 0, 0, 1, -1]], float)
    return mag @ jac.T, np.einsum("ij,nj,kj->nik", jac, sig**2, jac)


def posterior_median(gmm: dict, cond: np.ndarray, err: np.ndarray, *, chunk: int = 1000) -> np.ndarray:
    """Median of p(z | cond) for a mixture over (z, cond...), each row observed with error covariance ``err``."""
    from scipy.special import ndtr

    w, mu, cov = np.asarray(gmm["weights"]), np.asarray(gmm["means"]), np.asarray(gmm["covariances"])
    c_cc, c_zc = cov[:, 1:, 1:], cov[:, 0, 1:]
    grid = np.linspace(1e-3, float(mu[:, 0].max() + 6 * np.sqrt(cov[:, 0, 0].max())), 800)
    out = np.empty(len(cond))
    for lo in range(0, len(cond), chunk):
        sl = slice(lo, lo + chunk)
        s = c_cc[None] + err[sl, None]                                             # [n, K, d, d]
        inv = np.linalg.inv(s)
        diff = cond[sl, None, :] - mu[None, :, 1:]                                 # [n, K, d]
        logr = np.log(w) - 0.5 * np.einsum("nki,nkij,nkj->nk", diff, inv, diff) - 0.5 * np.linalg.slogdet(s)[1]
        resp = np.exp(logr - logr.max(1, keepdims=True))
        resp /= resp.sum(1, keepdims=True)
        gain = np.einsum("ki,nkij->nkj", c_zc, inv)                                # [n, K, d]
        mean = mu[None, :, 0] + np.einsum("nkj,nkj->nk", gain, diff)
        sd = np.sqrt(np.maximum(cov[None, :, 0, 0] - np.einsum("nkj,kj->nk", gain, c_zc), 1e-12))
        cdf = np.einsum("nk,nkg->ng", resp, ndtr((grid[None, None, :] - mean[..., None]) / sd[..., None]))
        cdf = (cdf - cdf[:, :1]) / np.maximum(cdf[:, -1:] - cdf[:, :1], 1e-12)   # truncated at z > 0
        out[sl] = [np.interp(0.5, c, grid) for c in cdf]
    return out


def bayes_with_less_noise(store, fold: int, scales=(1.0, 0.7, 0.5, 0.3, 0.0), gmm: dict | None = None) -> dict:
    """σ_MAD and η of the Bayes posterior median if the measured photometry's errors were ``scale`` times theirs.

    The measured colours are pulled towards the truth, ``true + scale (measured - true)``, and the
    posterior uses errors scaled alike: how much better photometry than the catalogue's an
    estimator would need to reach a given σ_MAD on this mock.
    """
    gmm = gmm if gmm is not None else _store_gmm(store)
    if gmm is None:
        raise DeepdipError(f"store {store.path} does not record a Gaussian-mixture population that is still shipped")
    rows = np.flatnonzero(store.column("fold") == fold)
    z = store.column("z_spec", rows).astype(np.float64)
    cond, err = _measured_colours(store, rows)
    true = truth_features(store.catalog([f"mag_{b}" for b in "ugriz"], rows=rows), list("ugriz"), "r", False)
    out = {}
    for scale in scales:
        zp = posterior_median(gmm, true + scale * (cond - true), err * scale**2 + 1e-12 * np.eye(5))
        out[float(scale)] = _point(zp, z)
    return out
