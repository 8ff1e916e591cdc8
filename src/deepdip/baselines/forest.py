"""Random-forest photo-z: the PDF is the spread of the trees' predictions, smoothed.

Each tree votes one redshift; the histogram of the votes is the raw PDF. Trees agree more than
they should (they share most of their data), so the votes are convolved with a Gaussian whose
width makes the out-of-bag PIT uniform: a training galaxy is scored only with the trees
that never saw it, which is an honest held-out score at no extra fitting cost.

Galaxies lacking bands: ``missing_bands`` (:class:`~deepdip.baselines.base.ColourBaseline`):
``pattern`` (default; a forest on the colours of the available bands), ``impute`` or ``zero``.
"""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import RandomForestRegressor

from deepdip.baselines import pdf as pdftools
from deepdip.baselines.base import ColourBaseline
from deepdip.baselines.features import ColourFeatures
from deepdip.baselines.params import KERNEL_BINS, MISSING_BANDS, SHARED_PARAMS, Param
from deepdip.errors import DeepdipError

TUNE_MAX = 5000  # training galaxies scored out-of-bag to choose the kernel width


class RandomForestBaseline(ColourBaseline):
    """Random forest regression on [ref mag, colours]: tree-vote histogram PDFs."""

    name = "rf"
    PARAMS = {
        **SHARED_PARAMS,
        "n_trees": Param(int, 200, "number of trees (votes per PDF)", minimum=1),
        "min_samples_leaf": Param(int, 1, "minimum training galaxies per leaf", minimum=1),
        "max_features": Param(float, 1.0, "fraction of features tried at each split (1.0 = bagged trees)",
                              above=0.0, maximum=1.0),
        "kernel_bins": KERNEL_BINS,
        "missing_bands": MISSING_BANDS,
    }

    def _fit_features(self, x, z_spec, groups):
        s = self.settings
        self.forest_ = RandomForestRegressor(
            n_estimators=s["n_trees"], min_samples_leaf=s["min_samples_leaf"], max_features=s["max_features"],
            n_jobs=s["n_jobs"], random_state=s["seed"],
        ).fit(x, z_spec, sample_weight=getattr(self, "fit_weights_", None))
        self.kernel_bins_ = float(s["kernel_bins"]) or self._tune_kernel(x, z_spec)

    def _votes(self, x) -> np.ndarray:
        return np.stack([tree.predict(x) for tree in self.forest_.estimators_], axis=1)  # [n, n_trees]

    def _tune_kernel(self, x, z_spec) -> float:
        sel = np.random.default_rng(self.settings["seed"]).choice(len(x), min(len(x), TUNE_MAX), replace=False)
        votes = self._votes(x[sel])
        # Out-of-bag mask: tree t may vote for galaxy i only if i was not in t's bootstrap sample.
        oob = np.ones_like(votes, dtype=bool)
        position = np.full(len(x), -1)
        position[sel] = np.arange(len(sel))
        for t, in_bag in enumerate(self.forest_.estimators_samples_):
            hit = position[in_bag]
            oob[hit[hit >= 0], t] = False
        usable = oob.any(axis=1)
        raw = pdftools.histogram(self.zgrid_, votes[usable], oob[usable].astype(np.float64))
        return pdftools.choose_bandwidth(raw, self.zgrid_, z_spec[sel][usable])

    def _predict_features(self, x):
        raw = pdftools.histogram(self.zgrid_, self._votes(x))
        return pdftools.smooth(raw, self.kernel_bins_)

    def _state(self):
        import skops.io

        return {**super()._state(), **self.features_.state(), "kernel_bins_": self.kernel_bins_,
                "forest_": skops.io.dumps(self.forest_)}

    def _set_state(self, state):
        super()._set_state(state)
        self.features_ = ColourFeatures.from_state(state)
        self.forest_ = load_forest(state["forest_"], n_features=len(self.features_.names))
        self.kernel_bins_ = float(state["kernel_bins_"])


#: The one type skops does not trust by default in a forest; safe here because :func:`load_forest`
#: checks every node index before a tree is used (skops's warning: unchecked indices can crash).
TRUSTED_TYPES = ["sklearn.tree._tree.Tree"]


def load_forest(data: bytes, n_features: int) -> RandomForestRegressor:
    """A random forest from ``skops.io`` bytes: no unpickling, no type outside ``TRUSTED_TYPES``,
    and node indices checked so a tampered file cannot make ``predict`` read out of bounds or loop."""
    import skops.io

    untrusted = [t for t in skops.io.get_untrusted_types(data=data) if t not in TRUSTED_TYPES]
    if untrusted:
        raise DeepdipError(f"the saved forest holds types deepdip does not load: {', '.join(untrusted)}")
    forest = skops.io.loads(data, trusted=TRUSTED_TYPES)
    if not isinstance(forest, RandomForestRegressor) or not forest.estimators_:
        raise DeepdipError("the saved forest is not a fitted random forest")
    for tree in forest.estimators_:
        t = tree.tree_
        nodes = np.arange(t.node_count)
        left, right, feature = t.children_left, t.children_right, t.feature
        leaf = left == -1
        ok = (t.n_features == n_features and t.n_outputs == 1 and len(left) == t.node_count
              and np.array_equal(leaf, right == -1)
              # children come after their parent (no cycles) and exist; split features exist
              and np.all((left[~leaf] > nodes[~leaf]) & (left[~leaf] < t.node_count))
              and np.all((right[~leaf] > nodes[~leaf]) & (right[~leaf] < t.node_count))
              and np.all((feature[~leaf] >= 0) & (feature[~leaf] < n_features)))
        if not ok:
            raise DeepdipError("the saved forest has trees with invalid node indices")
    return forest
