"""deepdip's RAIL stages under RAIL's algorithm path (``rail.estimation.algos.deepdip``), as
``rail.estimation.algos.k_nearneigh`` is for rail_sklearn; they are defined in :mod:`rail.deepdip`."""

from rail.deepdip import (
    DeepdipBoostEstimator,
    DeepdipBoostInformer,
    DeepdipBPZEstimator,
    DeepdipBPZInformer,
    DeepdipCNNEstimator,
    DeepdipCNNInformer,
    DeepdipKNNEstimator,
    DeepdipKNNInformer,
    DeepdipRandomForestEstimator,
    DeepdipRandomForestInformer,
)

__all__ = [
    "DeepdipBPZEstimator",
    "DeepdipBPZInformer",
    "DeepdipBoostEstimator",
    "DeepdipBoostInformer",
    "DeepdipCNNEstimator",
    "DeepdipCNNInformer",
    "DeepdipKNNEstimator",
    "DeepdipKNNInformer",
    "DeepdipRandomForestEstimator",
    "DeepdipRandomForestInformer",
]
