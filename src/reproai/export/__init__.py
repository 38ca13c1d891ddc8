"""A fitted model as an MLflow model: the network (exported with ``torch.export``), the preprocessing it
was trained with, its classes and threshold; the served model; ``reproai predict`` over files, folders
and tables."""

from reproai.export._package import INPUT_COLUMN, save_model
from reproai.export._predict import list_inputs, predict, resolve_model
from reproai.export._pyfunc import ImageClassifier

__all__ = ["INPUT_COLUMN", "ImageClassifier", "list_inputs", "predict", "resolve_model", "save_model"]
