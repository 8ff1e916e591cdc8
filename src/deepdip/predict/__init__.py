"""Prediction with trained CNN models: ensemble PDFs streamed into the photo-z catalogue."""

from deepdip.predict.core import EnsemblePredictor, find_model_files, load_members, predict_chunk, predict_store
from deepdip.predict.estimator import CNNEstimator

__all__ = ["EnsemblePredictor", "predict_chunk", "predict_store", "load_members", "find_model_files", "CNNEstimator"]
