"""k-nearest-neighbour photo-z in colour-magnitude space (the Beck et al. 2016 SDSS family).

The PDF of a galaxy is the distance-weighted histogram of its neighbours' spec-z, smoothed by a
Gaussian whose width makes the leave-one-out PIT of the training set uniform: each
training galaxy is scored against its own neighbours (itself excluded), so no data is held back.

Galaxies lacking bands: ``missing_bands`` (:class:`~deepdip.baselines.base.ColourBaseline`):
``pattern`` (default; neighbours in the colours of the available bands), ``impute`` or ``zero``.
"""

from __future__ import annotations

import numpy as np
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import StandardScaler

from deepdip.baselines import pdf as pdftools
from deepdip.baselines.base import ColourBaseline
from deepdip.baselines.features import ColourFeatures
from deepdip.baselines.params import KERNEL_BINS, MISSING_BANDS, SHARED_PARAMS, Param

TUNE_MAX = 5000  # training galaxies used to choose the kernel width (plenty for one scalar)


class KNNBaseline(ColourBaseline):
    """kNN on standardised [ref mag, colours]: neighbour-redshift histogram PDFs."""

    name = "knn"
    min_train = 2  # a neighbour other than the galaxy itself
    PARAMS = {
        **SHARED_PARAMS,
        "k": Param(int, 20, "number of neighbours whose spec-z make the PDF", minimum=1),
        "weights": Param(str, "distance", "neighbour weights: 'distance' (1/d, Beck et al.) or 'uniform'",
                         choices=("distance", "uniform")),
        "kernel_bins": KERNEL_BINS,
        "missing_bands": MISSING_BANDS,
    }

    def _fit_features(self, x, z_spec, groups):
        # Standardising gives the magnitude and each colour equal say in the distance.
        self.scaler_ = StandardScaler().fit(x)
        x = self.scaler_.transform(x)
        self.k_ = min(self.settings["k"], len(x) - 1)  # >= 1: min_train
        self.x_train_ = x  # shared with nn_: kept by name so a saved model refits nn_ on it
        self.nn_ = NearestNeighbors(n_neighbors=self.k_, n_jobs=self.settings["n_jobs"]).fit(x)
        self.z_train_ = z_spec
        w = getattr(self, "fit_weights_", None)
        self.w_train_ = None if w is None else np.asarray(w, dtype=np.float64)   # --reweight: votes weighted
        self.kernel_bins_ = float(self.settings["kernel_bins"]) or self._tune_kernel(x, z_spec)

    def _tune_kernel(self, x, z_spec) -> float:
        rng = np.random.default_rng(self.settings["seed"])
        sel = rng.choice(len(x), min(len(x), TUNE_MAX), replace=False)
        dist, idx = self.nn_.kneighbors(x[sel], n_neighbors=self.k_ + 1)
        # Drop each galaxy itself (normally the first neighbour, but duplicates may come first).
        not_self = idx != sel[:, None]
        order = np.argsort(~not_self, axis=1, kind="stable")[:, : self.k_]
        dist, idx = np.take_along_axis(dist, order, 1), np.take_along_axis(idx, order, 1)
        raw = pdftools.histogram(self.zgrid_, self.z_train_[idx], self._weights(dist, idx))
        return pdftools.choose_bandwidth(raw, self.zgrid_, z_spec[sel])

    def _weights(self, dist, idx):
        """Vote weights of neighbours ``idx`` at distances ``dist``: 1/distance with ``weights=distance``,
        times each neighbour's training weight (``--reweight``)."""
        w = None if self.settings["weights"] == "uniform" else 1.0 / np.maximum(dist, 1e-6)
        train_w = getattr(self, "w_train_", None)
        if train_w is not None:
            w = train_w[idx] if w is None else w * train_w[idx]
        return w

    def _predict_features(self, x):
        x = self.scaler_.transform(x)
        dist, idx = self.nn_.kneighbors(x)
        raw = pdftools.histogram(self.zgrid_, self.z_train_[idx], self._weights(dist, idx))
        return pdftools.smooth(raw, self.kernel_bins_)

    def _state(self):
        # The neighbour index is rebuilt from the scaled training features (deterministic, and no
        # tree structure is read back from a file).
        return {**super()._state(), **self.features_.state(), "scaler.mean": self.scaler_.mean_,
                "scaler.scale": self.scaler_.scale_, "scaler.var": self.scaler_.var_,
                "scaler.n_samples_seen": int(self.scaler_.n_samples_seen_), "x_train_": self.x_train_,
                "z_train_": self.z_train_, "k_": self.k_, "kernel_bins_": self.kernel_bins_,
                **({} if getattr(self, "w_train_", None) is None else {"w_train_": self.w_train_})}

    def _set_state(self, state):
        super()._set_state(state)
        self.features_ = ColourFeatures.from_state(state)
        x = np.ascontiguousarray(state["x_train_"], dtype=np.float64)
        z = np.asarray(state["z_train_"], dtype=np.float64)
        k = int(state["k_"])
        if x.ndim != 2 or x.shape[1] != len(self.features_.names) or z.shape != (len(x),) or not 1 <= k < len(x):
            raise ValueError("the saved training features, redshifts and k do not match")
        self.scaler_ = StandardScaler()
        for name in ("mean", "scale", "var"):
            setattr(self.scaler_, f"{name}_", np.asarray(state[f"scaler.{name}"], dtype=np.float64))
        self.scaler_.n_samples_seen_ = int(state["scaler.n_samples_seen"])
        self.scaler_.n_features_in_ = x.shape[1]
        self.k_, self.x_train_, self.z_train_ = k, x, z
        self.w_train_ = np.asarray(state["w_train_"], dtype=np.float64) if "w_train_" in state else None
        self.nn_ = NearestNeighbors(n_neighbors=k, n_jobs=self.settings["n_jobs"]).fit(x)
        self.kernel_bins_ = float(state["kernel_bins_"])
