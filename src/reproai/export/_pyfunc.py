"""The MLflow Python-function model: images in (file bytes, base64-encoded), class probabilities out.

It decodes each image with reproai's own decoder (DICOM or any format Pillow reads, with the training's
intensity policy), resizes and crops it to the training size, normalises
it as training did, and runs the exported network in the same memory layout and batch size as the
study's evaluation passes, so that on a CPU its probabilities equal those of the study for the same
images in the same batches (a different batch composition changes float rounding, ~1e-7).
"""

from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

__all__ = ["ImageClassifier", "decode_input"]


def decode_input(value: Any) -> bytes:
    """An image as the model takes it: base64 text (what JSON carries), or raw bytes.

    Raises:
        ValueError: text that is not base64.
    """
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if not isinstance(value, str):
        raise ValueError(f"an image must be base64-encoded file bytes (a string), not {type(value).__name__}")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ValueError(f"not base64-encoded file bytes ({e})") from e


class ImageClassifier(PythonModel):
    """Predicts classes of images given as a DataFrame column ``image`` of base64-encoded file bytes
    (PNG, JPEG, GIF, DICOM, ... as on disk), with an optional ``id`` column that is passed through.

    Returns one row per image: ``id`` (when given), ``predicted`` (a class name), ``probability_<class>``
    for every class, and ``error`` (None, or why the image could not be read: that row's other columns
    are then None, and the others are unaffected).
    """

    def load_context(self, context: Any) -> None:
        import torch

        from reproai.data._intensity import LEGACY, as_intensity

        self.meta = json.loads(Path(context.artifacts["preprocessing"]).read_text())
        # The policy the training images were decoded with; a model saved before there was one scaled
        # each image by its maximum.
        self.intensity = as_intensity(self.meta["intensity"]) if "intensity" in self.meta else LEGACY
        self.network = torch.export.load(context.artifacts["network"]).module()
        scale = 255.0
        self.mean = torch.tensor(self.meta["mean"]).view(1, 3, 1, 1) * scale
        self.std = torch.tensor(self.meta["std"]).view(1, 3, 1, 1) * scale

    def _probabilities(self, images: np.ndarray) -> np.ndarray:
        import torch

        from reproai.models._network import as_logits
        from reproai.training._batching import normalize

        classes = self.meta["classes"]
        out = []
        batch = int(self.meta["batch_size"])
        with torch.inference_mode():
            for start in range(0, len(images), batch):
                x = normalize(
                    torch.from_numpy(images[start : start + batch]),
                    self.mean,
                    self.std,
                    channels_last=self.meta["channels_last"],
                )
                z = as_logits(self.network(x), len(classes)).float()
                p = torch.sigmoid(z.squeeze(1)) if len(classes) == 2 else torch.softmax(z, dim=1)
                out.append(p.double().numpy())
        return np.concatenate(out) if out else np.empty((0,))

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        from reproai.data._images import decode_image, decoder_error

        if "image" not in model_input.columns:
            raise ValueError(
                f"the input needs a column 'image' of base64-encoded file bytes; it has {list(model_input.columns)}"
            )
        classes = self.meta["classes"]
        size = int(self.meta["image_size"])
        names = model_input["id"].astype(str).tolist() if "id" in model_input.columns else None
        decoded: list[np.ndarray | None] = []
        errors: list[str | None] = []
        for i, value in enumerate(model_input["image"].tolist()):
            try:
                name = names[i] if names else f"row {i}"
                decoded.append(decode_image(decode_input(value), size, name=name, intensity=self.intensity))
                errors.append(None)
            except Exception as e:  # noqa: BLE001 - one bad image is that row's error, not the batch's
                decoded.append(None)
                cause = e.__cause__ or e  # the decoder's own failure, without the training-time advice
                errors.append(f"Cannot decode image {names[i] if names else f'row {i}'}: {decoder_error(cause)}")
        good = [(i, a) for i, a in enumerate(decoded) if a is not None]
        ok = [i for i, _ in good]
        stacked = np.stack([a for _, a in good]) if good else np.empty((0, size, size, 3), np.uint8)
        proba = self._probabilities(stacked)
        table: dict[str, Any] = {} if names is None else {"id": names}
        columns = np.full((len(decoded), len(classes)), np.nan)
        if ok:
            columns[ok] = np.column_stack([1.0 - proba, proba]) if len(classes) == 2 else proba
        predicted: list[str | None] = [None] * len(decoded)
        threshold = self.meta.get("threshold")
        for row, i in enumerate(ok):
            if len(classes) == 2:
                k = int(proba[row] >= (0.5 if threshold is None else threshold))
            else:
                k = int(np.argmax(proba[row]))
            predicted[i] = classes[k]
        # Missing values as None, not NaN (pandas' choice for strings and floats), so that the server's
        # JSON is valid: null, where NaN is not JSON at all.
        table["predicted"] = pd.Series(predicted, dtype=object)
        for k, c in enumerate(classes):
            column = pd.Series(columns[:, k])
            table[f"probability_{c}"] = (
                column if len(ok) == len(decoded) else column.astype(object).where(column.notna(), None)
            )
        table["error"] = pd.Series(errors, dtype=object)
        return pd.DataFrame(table)
