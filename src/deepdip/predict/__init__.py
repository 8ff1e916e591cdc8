"""Prediction with trained CNN models: ensemble PDFs streamed into the photo-z catalogue."""

from deepdip.predict.core import (EnsemblePredictor, RunPredictor, find_model_files, load_members, predict_chunk,
                                  predict_store)
from deepdip.predict.dask_adapter import predict_store_dask
from deepdip.predict.estimator import CNNEstimator

__all__ = ["EnsemblePredictor", "RunPredictor", "predict_chunk", "predict_store", "predict_store_dask", "load_members",
           "find_model_files", "CNNEstimator"]
