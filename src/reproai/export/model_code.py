"""The MLflow model's code ("models from code"): what ``mlflow.pyfunc.load_model`` runs to build the model,
instead of unpickling an object."""

import mlflow.models

from reproai.export.pyfunc import ImageClassifier

mlflow.models.set_model(ImageClassifier())
