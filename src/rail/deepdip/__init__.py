"""deepdip's RAIL plugin: Informer/Estimator stages for the CNN on pixels and the catalogue baselines.

Installed with ``pip install "deepdip[rail]"`` (``pz-rail-base``). RAIL finds it as it finds its
own packages: ``rail`` is a namespace package, ``rail.deepdip`` one of its members, so
``RailEnv.import_all_packages()`` / ``rail.stages.import_and_attach_all()`` import this module,
which registers the stages (``rail.stages.DeepdipKNNInformer``...). The stages also live under
RAIL's usual algorithm path, ``rail.estimation.algos.deepdip``.

Stages (each Informer writes the model its Estimator reads):

=================================  ===================================  ==========================
Informer                           Estimator                            model file
=================================  ===================================  ==========================
``DeepdipKNNInformer``             ``DeepdipKNNEstimator``              deepdip ``.npz`` (no pickle)
``DeepdipRandomForestInformer``    ``DeepdipRandomForestEstimator``     deepdip ``.npz``
``DeepdipBoostInformer``           ``DeepdipBoostEstimator``            deepdip ``.npz``
``DeepdipBPZInformer``             ``DeepdipBPZEstimator``              deepdip ``.npz``
``DeepdipCNNInformer``             ``DeepdipCNNEstimator``              run manifest ``.json``
=================================  ===================================  ==========================

Baselines read RAIL's magnitude tables (:mod:`rail.deepdip.tables`); the CNN reads a deepdip
cutout store (:class:`~rail.deepdip.handles.CutoutStoreHandle`). Every Estimator writes a
``qp.hist`` ensemble on deepdip's redshift bins with ancil ``id``, ``zmode``, ``zmean``,
``zmedian`` (and ``zstd``, ``zlo68``, ``zhi68``), which RAIL's ``PointToPointEvaluator`` and
``DistToPointEvaluator`` read as they read any RAIL estimator's output.
"""

from deepdip import __version__
from rail.deepdip.baselines import (
    BASELINE_STAGES,
    DeepdipBoostEstimator,
    DeepdipBoostInformer,
    DeepdipBPZEstimator,
    DeepdipBPZInformer,
    DeepdipKNNEstimator,
    DeepdipKNNInformer,
    DeepdipRandomForestEstimator,
    DeepdipRandomForestInformer,
)
from rail.deepdip.cnn import DeepdipCNNEstimator, DeepdipCNNInformer
from rail.deepdip.handles import CNNModel, CutoutStoreHandle, DeepdipModelHandle, DeepdipRunHandle
from rail.deepdip.tables import magnitude_table, table_photometry

__all__ = [
    "BASELINE_STAGES",
    "CNNModel",
    "CutoutStoreHandle",
    "DeepdipBPZEstimator",
    "DeepdipBPZInformer",
    "DeepdipBoostEstimator",
    "DeepdipBoostInformer",
    "DeepdipCNNEstimator",
    "DeepdipCNNInformer",
    "DeepdipKNNEstimator",
    "DeepdipKNNInformer",
    "DeepdipModelHandle",
    "DeepdipRandomForestEstimator",
    "DeepdipRandomForestInformer",
    "DeepdipRunHandle",
    "__version__",
    "magnitude_table",
    "table_photometry",
]
