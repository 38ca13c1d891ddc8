"""Save a fitted network as an MLflow model: the exported network, its preprocessing, its classes and
threshold, a signature and an input example, and requirements pinned to this environment."""

from __future__ import annotations

import base64
import io
import json
import logging
import tempfile
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from reproai.errors import ReproaiError
from reproai.models._backbones import BackboneInfo

__all__ = ["save_model", "export_network", "INPUT_COLUMN", "pinned_requirements"]

INPUT_COLUMN = "image"
# What the model needs at serving time, pinned to the versions it was trained with.
_REQUIREMENTS = (
    "torch",
    "torchvision",
    "numpy",
    "pandas",
    "pillow",
    "mlflow",
    "scikit-learn",
    "timm",
    "optuna",
    "pydicom",
    "pylibjpeg",
    "pylibjpeg-libjpeg",
    "pylibjpeg-openjpeg",
)


def pinned_requirements() -> list[str]:
    """``name==version`` of the packages the model needs, as installed here."""
    out = []
    for name in _REQUIREMENTS:
        try:
            out.append(f"{name}=={metadata.version(name).split('+')[0]}")
        except metadata.PackageNotFoundError:
            continue
    return out


def export_network(model: nn.Module, image_size: int, path: Path, *, channels_last: bool) -> None:
    """Export ``model`` (eval mode, on the CPU) with ``torch.export``, its batch dimension dynamic.

    Raises:
        ReproaiError: the model cannot be exported (data-dependent control flow, say), with the reason.
    """
    from torch.export import Dim

    model = model.eval().to("cpu")
    example = torch.zeros(2, 3, image_size, image_size)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        example = example.contiguous(memory_format=torch.channels_last)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # torch.export says where it could not tell a tensor's device; the network is on the CPU.
            warnings.filterwarnings("ignore", message="No complete tensor found")
            program = torch.export.export(model, (example,), dynamic_shapes=({0: Dim("batch", min=1, max=1 << 16)},))
            torch.export.save(program, str(path))
    except Exception as e:  # noqa: BLE001 - torch.export reports unsupported models in many types
        raise ReproaiError(
            f"torch.export cannot export the model ({type(e).__name__}: {str(e)[:500]}), so it cannot "
            "be logged as an MLflow model; the study's results stand."
        ) from e


def _png(image: np.ndarray) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def save_model(
    path: Path,
    model: nn.Module,
    *,
    info: BackboneInfo,
    classes: list[str],
    threshold: float | None,
    batch_size: int,
    channels_last: bool,
    example_image: np.ndarray,
    intensity: dict[str, Any] | None = None,
    metadata_tags: dict[str, Any] | None = None,
) -> Path:
    """Write an MLflow model to ``path`` (a new folder): the network, exported; ``preprocessing.json``
    (image size, mean and std, memory layout, batch size, classes, threshold, and the intensity policy
    ``intensity`` the training images were decoded with, :func:`reproai.data._intensity.intensity_dict`'s
    form, default: :class:`reproai.Intensity`'s); reproai's code, for its decoder; a signature, an input
    example (``example_image``, ``(h, w, 3)`` uint8, as PNG) and pinned requirements."""
    import mlflow.pyfunc
    import pandas as pd
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    from reproai.data._intensity import intensity_dict

    assert info.image_size is not None  # the study knows the size it trained at
    with tempfile.TemporaryDirectory() as tmp:
        network = Path(tmp) / "network.pt2"
        export_network(model, info.image_size, network, channels_last=channels_last)
        preprocessing = Path(tmp) / "preprocessing.json"
        preprocessing.write_text(
            json.dumps(
                {
                    "image_size": info.image_size,
                    "mean": list(info.mean),
                    "std": list(info.std),
                    "channels_last": channels_last,
                    "batch_size": batch_size,
                    "classes": classes,
                    "threshold": threshold,
                    "intensity": intensity_dict(intensity),
                    "decoder": "reproai.data.decode_image (DICOM or Pillow by content, the intensity policy for "
                    "more than 8 bits, resize the short side, centre-crop, RGB)",
                    **(metadata_tags or {}),
                },
                indent=2,
            )
        )
        signature = ModelSignature(
            inputs=Schema([ColSpec("string", INPUT_COLUMN), ColSpec("string", "id", required=False)]),
            outputs=Schema(
                [
                    ColSpec("string", "id", required=False),
                    ColSpec("string", "predicted", required=False),
                    *[ColSpec("double", f"probability_{c}", required=False) for c in classes],
                    ColSpec("string", "error", required=False),
                ]
            ),
        )
        mlflow_log = logging.getLogger("mlflow")
        level = mlflow_log.level
        with warnings.catch_warnings():
            # MLflow compares the example's columns with a range (mlflow/models/utils.py), which pandas 3
            # deprecates; nothing of ours to change. Its INFO line on checking the example goes too.
            warnings.filterwarnings("ignore", message="Operation with range is deprecated")
            mlflow_log.setLevel(max(level, logging.WARNING))
            try:
                mlflow.pyfunc.save_model(
                    str(path),
                    python_model=str(Path(__file__).with_name("_model_code.py")),
                    artifacts={"network": str(network), "preprocessing": str(preprocessing)},
                    code_paths=[str(Path(__file__).resolve().parents[1])],  # reproai itself, for its decoder
                    signature=signature,
                    input_example=pd.DataFrame({INPUT_COLUMN: [_png(example_image)], "id": ["example"]}),
                    pip_requirements=pinned_requirements(),
                )
            finally:
                mlflow_log.setLevel(level)
    return path
