"""How much redshift information a mock's galaxies carry at all: regressions on their truths.

An estimator working from the pixels can beat catalogue photometry only by using information the
catalogue lacks. In a mock, the images are made from known quantities: noise-free magnitudes,
half-light radius, bulge fraction, axis ratio (and E(B-V), which every method is given). A
regression of z on those truths, with the ``boost`` baseline's learner and the same split, shows
what is reachable at this training size: no method fed the noisy images can do much better (it
could only if the learner, not the information, were the limit). It needs truth columns, so it is
a diagnostic of mocks, never an estimator: its numbers are a reference line, not a competitor.
"""

from __future__ import annotations

import numpy as np

from deepdip import metrics
from deepdip.errors import DeepdipError

MORPHOLOGY = ("hlr", "bulge_frac", "q_disk")   # what the renderer draws besides the SED


def truth_features(cat: dict, bands, ref_band: str, morphology: bool) -> np.ndarray:
    """``[ref magnitude, adjacent colours (, log10 hlr, bulge fraction, axis ratio)]`` from truths."""
    mag = np.stack([np.asarray(cat[f"mag_{b}"], dtype=np.float64) for b in bands], axis=1)
    parts = [mag[:, [list(bands).index(ref_band)]], mag[:, :-1] - mag[:, 1:]]
    if morphology:
        parts.append(np.stack([np.log10(cat["hlr"]), cat["bulge_frac"], cat["q_disk"]], axis=1))
    return np.concatenate(parts, axis=1)


def information_floor(store, fold: int = 0, *, ref_band: str | None = None, seed: int = 0,
                      n_jobs: int = 1) -> dict:
    """σ_MAD, η, bias on the test ``fold`` of LightGBM regressions trained on the other folds' truths.

    Returns ``{"true_magnitudes": {...}, "true_magnitudes_morphology": {...}, "n_train", "n_test"}``.
    Raises :class:`DeepdipError` for a store without the truth columns of a deepdip mock.
    """
    import lightgbm

    bands = list(store.bands)
    ref_band = ref_band or ("r" if "r" in bands else bands[len(bands) // 2])
    needed = ["z_spec", "fold", *MORPHOLOGY, *(f"mag_{b}" for b in bands)]
    missing = [c for c in needed if c not in store.columns]
    if missing:
        raise DeepdipError(f"store {store.path} lacks the mock truth column(s) {', '.join(missing)}: "
                           "the information floor is defined for deepdip mocks only")
    cat = store.catalog(needed)
    test = np.asarray(cat["fold"]) == fold
    z = np.asarray(cat["z_spec"], dtype=np.float64)
    out = {"n_train": int((~test).sum()), "n_test": int(test.sum())}
    for key, morphology in (("true_magnitudes", False), ("true_magnitudes_morphology", True)):
        x = truth_features(cat, bands, ref_band, morphology)
        # The boost baseline's regressor settings (deepdip.baselines.boost), so the gap to it is
        # information, not learner.
        model = lightgbm.LGBMRegressor(n_estimators=600, learning_rate=0.03, num_leaves=31, min_child_samples=20,
                                       subsample=0.8, subsample_freq=1, random_state=seed, n_jobs=n_jobs,
                                       deterministic=True, force_row_wise=True, verbose=-1)
        zp = model.fit(x[~test], z[~test]).predict(x[test])
        out[key] = {"sigma_mad": metrics.sigma_mad(zp, z[test]), "outlier_frac": metrics.outlier_frac(zp, z[test]),
                    "bias": metrics.bias(zp, z[test]), "n": int(test.sum())}
    return out
