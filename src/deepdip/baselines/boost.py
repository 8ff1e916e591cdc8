"""Gradient-boosted trees (LightGBM): a point regression plus a learnt error model for the PDF.

Boosted trees have no natural vote spread, and classification over 180+ bins would cost 180
trees per round. Instead: (1) out-of-fold predictions on the training set give honest residuals
r = (z - z_hat) / (1 + z_hat); (2) a second booster learns their typical size s(x) from the
features (log |r| regression); (3) the PDF of a galaxy is z_hat + (1 + z_hat) s(x) t, with t drawn
from the empirical distribution of the standardised residuals r / s(x). This is calibrated by
construction on the training population, outliers included, and sharp where the colours are.

Galaxies lacking bands: ``missing_bands`` (:class:`~deepdip.baselines.base.ColourBaseline`):
``pattern`` (default; boosters on the colours of the available bands), ``impute``, ``nan``
(LightGBM's own missing-value handling, learnt from band-dropout copies) or ``zero``.
"""

from __future__ import annotations

import numpy as np

from deepdip.baselines import pdf as pdftools
from deepdip.baselines.base import ColourBaseline
from deepdip.baselines.features import ColourFeatures
from deepdip.baselines.params import MISSING_BANDS, SHARED_PARAMS, Param
from deepdip.errors import DeepdipError

N_QUANTILES = 200  # points of the standardised-residual distribution placed in each PDF
INNER_FOLDS = 4  # out-of-fold splits of the training set for the residuals


class BoostedTreesBaseline(ColourBaseline):
    """LightGBM regression on [ref mag, colours] with an out-of-fold residual model for PDFs."""

    name = "boost"
    native_nan = True  # missing_bands="nan": LightGBM's own missing-value handling
    min_train = INNER_FOLDS  # every out-of-fold split needs a galaxy
    PARAMS = {
        **SHARED_PARAMS,
        "n_rounds": Param(int, 600, "boosting rounds of the redshift regressor", minimum=1),
        "learning_rate": Param(float, 0.03, "shrinkage per round", above=0.0),
        "num_leaves": Param(int, 31, "leaves per tree", minimum=2),  # LightGBM needs a split
        "min_child_samples": Param(int, 20, "minimum training galaxies per leaf", minimum=0),
        "smooth_bins": Param(float, 1.0, "Gaussian smoothing of the PDF in bins, against the histogram's "
                             "graininess only (the residual model sets the width)", minimum=0.0),
        "missing_bands": MISSING_BANDS,
    }

    def booster(self, **overrides):
        """An unfitted LightGBM regressor with this baseline's settings (``overrides`` replace some)."""
        import lightgbm

        s = self.settings
        kwargs = dict(
            n_estimators=s["n_rounds"], learning_rate=s["learning_rate"], num_leaves=s["num_leaves"],
            min_child_samples=s["min_child_samples"], subsample=0.8, subsample_freq=1, colsample_bytree=1.0,
            random_state=s["seed"], n_jobs=s["n_jobs"], deterministic=True, force_row_wise=True, verbose=-1,
        )
        kwargs.update(overrides)
        return lightgbm.LGBMRegressor(**kwargs)

    def _scale_booster(self):
        # A smaller model: it only has to learn how the typical error varies across colour space.
        return self.booster(n_estimators=200, learning_rate=0.05, min_child_samples=50)

    def _fit_features(self, x, z_spec, groups):
        rng = np.random.default_rng(self.settings["seed"])
        # Rows of one galaxy (band-dropout copies) share an inner fold: no copy predicts its twin.
        fold = rng.permutation(int(groups.max()) + 1)[groups] % INNER_FOLDS
        w = getattr(self, "fit_weights_", None)
        w = np.ones(len(x)) if w is None else w
        z_oof = np.empty(len(x))
        for k in range(INNER_FOLDS):
            test = fold == k
            z_oof[test] = self.booster().fit(x[~test], z_spec[~test], sample_weight=w[~test]).predict(x[test])
        self.regressor_ = self.booster().fit(x, z_spec, sample_weight=w)
        resid = (z_spec - z_oof) / (1.0 + z_oof)
        # The error model predicts log|r|: its exponent is a typical |r| (a scale), robust to outliers.
        log_abs = np.log(np.abs(resid) + 1e-5)
        # Standardise with out-of-fold scales too: in-sample scales hug the residuals they were
        # fitted to, which would make the t distribution, hence every PDF, too narrow.
        log_s = np.empty(len(x))
        for k in range(INNER_FOLDS):
            test = fold == k
            log_s[test] = self._scale_booster().fit(x[~test], log_abs[~test], sample_weight=w[~test]).predict(x[test])
        self.scale_model_ = self._scale_booster().fit(x, log_abs, sample_weight=w)
        t = resid / np.exp(log_s)
        self.t_quantiles_ = weighted_quantile(t, (np.arange(N_QUANTILES) + 0.5) / N_QUANTILES, w)
        self.smooth_bins_ = float(self.settings["smooth_bins"])

    def _predict_features(self, x):
        z_hat = self.regressor_.predict(x)
        scale = np.exp(self.scale_model_.predict(x))
        votes = z_hat[:, None] + ((1.0 + z_hat) * scale)[:, None] * self.t_quantiles_[None, :]
        return pdftools.smooth(pdftools.histogram(self.zgrid_, votes), self.smooth_bins_)

    def _state(self):
        # LightGBM's own text format (exact: thresholds and leaf values are written to 17 digits).
        return {**super()._state(), **self.features_.state(), "t_quantiles_": self.t_quantiles_,
                "smooth_bins_": self.smooth_bins_,
                "regressor_": _booster(self.regressor_).model_to_string().encode(),
                "scale_model_": _booster(self.scale_model_).model_to_string().encode()}

    def _set_state(self, state):
        import lightgbm

        super()._set_state(state)
        self.features_ = ColourFeatures.from_state(state)
        n_features = len(self.features_.names)
        for name in ("regressor_", "scale_model_"):
            try:
                booster = lightgbm.Booster(model_str=bytes(state[name]).decode())
            except lightgbm.basic.LightGBMError as exc:
                raise DeepdipError(f"the saved {name.rstrip('_')} is not a LightGBM model: {exc}") from None
            if booster.num_feature() != n_features:
                raise DeepdipError(f"the saved {name.rstrip('_')} takes {booster.num_feature()} features, "
                                   f"not {n_features}")
            setattr(self, name, booster)  # a Booster predicts what the fitted LGBMRegressor did
        self.t_quantiles_ = np.asarray(state["t_quantiles_"], dtype=np.float64)
        self.smooth_bins_ = float(state["smooth_bins_"])


def _booster(model):
    """The LightGBM Booster of a fitted regressor, or of a loaded model (already a Booster)."""
    return getattr(model, "booster_", model)


def weighted_quantile(values: np.ndarray, q: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Quantiles ``q`` of ``values`` with ``weights`` (equal weights: ``np.quantile``'s "hazen" points)."""
    order = np.argsort(values)
    v, w = values[order], weights[order]
    if np.allclose(w, w[0]):
        return np.quantile(values, q)
    cum = (np.cumsum(w) - 0.5 * w) / w.sum()
    return np.interp(q, cum, v)
