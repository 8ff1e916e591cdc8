"""Baselines on a real SDSS photometric table: read it, and cross-validate a baseline on it.

Data: ``sdss_main_gst10k`` (10,000 SDSS main-sample galaxies matched to 2MASS, from the kcorrect
test data; see ``../shared/data/README.md``): ``MODELFLUX`` and ``MODELFLUX_IVAR`` (ugriz,
nanomaggies), ``EXTINCTION`` (SDSS pipeline A_b, mag) and spec-z ``Z``. Folds come from
:func:`deepdip.store.assign_folds` on the row number, as in a store. The table of
``docs/baselines-real-sdss.md`` is the study ``python benchmarks/baselines_real_sdss.py --data PATH``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from deepdip.baselines import make_baseline
from deepdip.errors import DeepdipError
from deepdip.metrics import compute_metrics, point_estimates
from deepdip.photometry import Photometry
from deepdip.zgrid import ZGrid

BANDS = ("u", "g", "r", "i", "z")
FILTERS = tuple(f"sdss2010-{b}" for b in BANDS)
#: The sample reaches z = 0.58: the sdss preset's bin width (0.4/180) extended to z = 0.6.
ZGRID = ZGrid(0.0, 0.6, 270)


def load_real_sdss(path) -> tuple[Photometry, np.ndarray]:
    """Measured ugriz model photometry (with SDSS extinction) and spec-z of the real sample.

    ``path``: the sample's FITS table (``sdss_main_gst10k/gst_tests_small.fits``).
    """
    from astropy.io import fits

    path = Path(path)
    if not path.exists():
        raise DeepdipError(f"real SDSS catalogue not found at {path}")
    with fits.open(path) as hdul:
        t = hdul[1].data
        flux = np.asarray(t["MODELFLUX"], dtype=np.float64)
        ivar = np.asarray(t["MODELFLUX_IVAR"], dtype=np.float64)
        a_b = np.asarray(t["EXTINCTION"], dtype=np.float64)
        z = np.asarray(t["Z"], dtype=np.float64)
    with np.errstate(divide="ignore"):
        err = np.where(ivar > 0, 1.0 / np.sqrt(ivar), np.nan)  # ivar 0 = not measured
    return Photometry(flux, err, a_b, BANDS, FILTERS), z


def cross_validate(method: str, phot: Photometry, z: np.ndarray, *, zgrid: ZGrid = ZGRID, n_folds: int = 5,
                   seed: int = 0, point: str = "z_mean", **params) -> dict:
    """K-fold cross-validated metrics of one baseline (all folds' test predictions pooled).

    Returns the :func:`deepdip.metrics.compute_metrics` dict plus ``fit_s`` / ``predict_s`` (total
    seconds over folds) and ``predict_per_1k_s``.
    """
    from deepdip.store import assign_folds

    folds = assign_folds(np.arange(len(z)), n_folds=n_folds, seed=seed)
    pdf = np.empty((len(z), zgrid.nbins), dtype=np.float32)
    fit_s = predict_s = 0.0
    for k in range(n_folds):
        train, test = np.flatnonzero(folds != k), np.flatnonzero(folds == k)
        est = make_baseline(method, zgrid, seed=seed, **params)
        t0 = time.perf_counter()
        est.fit_photometry(phot.subset(train), z[train])
        t1 = time.perf_counter()
        pdf[test] = est.predict_pdf_photometry(phot.subset(test))
        fit_s, predict_s = fit_s + t1 - t0, predict_s + time.perf_counter() - t1
    z_phot = point_estimates(pdf, zgrid)[point]
    out = compute_metrics(z_phot, z, pdf=pdf, zgrid=zgrid)
    out.update(method=method, point=point, fit_s=round(fit_s, 2), predict_s=round(predict_s, 2),
               predict_per_1k_s=round(1000 * predict_s / len(z), 3))
    return out
