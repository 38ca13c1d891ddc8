"""A fitted model as an MLflow model: the network (exported with ``torch.export``), the preprocessing it
was trained with, its classes and threshold, and the ``reproai predict`` logic that serves it."""

from reproai.export.package import INPUT_COLUMN, save_model
from reproai.export.pyfunc import ImageClassifier

__all__ = ["save_model", "ImageClassifier", "INPUT_COLUMN"]
