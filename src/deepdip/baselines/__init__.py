"""Catalogue photo-z baselines on measured photometry: kNN, random forest, boosted trees, BPZ.

Every baseline is a :class:`~deepdip.estimators.PhotozEstimator` (fit on the training folds of a
store, predict PDFs on the survey's redshift grid) with an array face for catalogues without
images::

    from deepdip.baselines import make_baseline
    est = make_baseline("knn", k=20).fit(store, fold=0)
    est.predict_catalog(store, store.split_rows("test", fold=0), "knn.parquet")
    est.save("knn.npz")                       # read back with load_baseline("knn.npz"), never unpickled

Parameters follow scikit-learn's contract (``get_params``, ``set_params``, ``sklearn.base.clone``):
each class's constructor takes ``zgrid`` and, as keywords, the names of its ``PARAMS``.
"""

from __future__ import annotations

from importlib import import_module

from deepdip.errors import DeepdipValueError
from deepdip.photometry import Photometry

# method name -> "module:class"; imported on use so that e.g. BPZ's dependency is only needed for BPZ.
METHODS: dict[str, str] = {
    "knn": "deepdip.baselines.knn:KNNBaseline",
    "rf": "deepdip.baselines.forest:RandomForestBaseline",
    "boost": "deepdip.baselines.boost:BoostedTreesBaseline",
    "bpz": "deepdip.baselines.bpz:BPZBaseline",
}


def baseline_class(method: str):
    """The estimator class of a method name (``knn``, ``rf``, ``boost``, ``bpz``)."""
    if method not in METHODS:
        raise DeepdipValueError(f"unknown baseline {method!r}; choose from {', '.join(METHODS)}")
    module, cls = METHODS[method].split(":")
    return getattr(import_module(module), cls)


def make_baseline(method: str, zgrid=None, **params):
    """A fresh, unfitted baseline; ``params`` are the names of its ``PARAMS`` (see ``deepdip baseline --help``)."""
    return baseline_class(method)(zgrid, **params)


def load_baseline(path):
    """A fitted baseline saved with ``est.save(path)`` (see :mod:`deepdip.baselines.modelfile`)."""
    from deepdip.baselines.modelfile import load_baseline as load

    return load(path)


__all__ = ["METHODS", "Photometry", "baseline_class", "load_baseline", "make_baseline"]
