"""Training the CNN with PyTorch Lightning (folds x ensemble, resumable, time-budgeted).

``train(store, fold, model, ensemble, epochs, max_minutes, out, seed, ...)`` is the entry point;
Lightning is imported only when training runs, so prediction does not pay for it.
"""

from __future__ import annotations

from deepdip.train.estimator import CNNEstimator


def train(*args, **kwargs):
    """See :func:`deepdip.train.run.train`."""
    from deepdip.train.run import train as _train
    return _train(*args, **kwargs)


__all__ = ["train", "CNNEstimator"]
