"""Prediction with trained CNN models: ensemble PDFs streamed into the photo-z catalogue.

Depends on :mod:`deepdip.models` (networks, model files), never on the training package; the CNN
as a fit/predict estimator, whose ``fit`` trains, lives there (``CNNEstimator``) and predicts
through this package.
"""

from deepdip.predict.core import (
    EnsemblePredictor,
    RunPredictor,
    find_model_files,
    load_members,
    predict_chunk,
    predict_store,
)
from deepdip.predict.dask_adapter import predict_store_dask


def predict_store_lightning(*args, **kwargs):
    """See :func:`deepdip.predict.lightning_adapter.predict_store_lightning` (imports Lightning)."""
    from deepdip.predict.lightning_adapter import predict_store_lightning as run

    return run(*args, **kwargs)


__all__ = ["EnsemblePredictor", "RunPredictor", "predict_chunk", "predict_store", "predict_store_dask",
           "predict_store_lightning", "load_members", "find_model_files"]
