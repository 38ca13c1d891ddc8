"""The MLflow model's code ("models from code"): what ``mlflow.pyfunc.load_model`` runs to build the model,
instead of unpickling an object."""

import mlflow.models

from reproai.export import ImageClassifier  # the public name: a logged model outlives module moves

mlflow.models.set_model(ImageClassifier())
