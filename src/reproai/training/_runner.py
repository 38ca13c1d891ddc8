"""The forward pass of one fit: the device, mixed precision, channels-last, compilation, logits in
reproai's convention, and inference over a subset."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import numpy as np
import torch
from torch import nn

from reproai.config._schema import Model, Training
from reproai.errors import ConfigError
from reproai.models._network import ModelParts, as_logits, check_logits
from reproai.runtime import _stopping as stopping
from reproai.training._batching import FeatureBatches, ImageBatches
from reproai.training._compilation import compiled
from reproai.training._outputs import Predictions

__all__ = ["Runner", "Logits", "FrozenBackbone", "Forward", "Batches", "predict", "resolve_device", "resolve_precision"]

Forward = Callable[[torch.Tensor], torch.Tensor]
Batches = ImageBatches | FeatureBatches


def resolve_device(name: str) -> torch.device:
    """``"auto"`` picks CUDA when available, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(name)
    except RuntimeError as e:
        raise ConfigError(f"training.device={name!r} is not a valid device: {e}.") from e


def resolve_precision(name: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``training.precision`` on ``device``; None for full fp32."""
    if name == "fp32" or (name == "auto" and device.type != "cuda"):
        return None
    if name == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[name]


class Logits:
    """A module's outputs as logits in reproai's convention (see :func:`reproai.models._network.as_logits`); the
    first batch's shape is checked, with an error that names the model."""

    def __init__(self, module: Forward, num_classes: int, spec: Model) -> None:
        self.module, self.num_classes, self.spec, self.checked = module, num_classes, spec, False

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = self.module(x)
        if not self.checked:
            check_logits(out, self.num_classes, self.spec)
            self.checked = True
        return as_logits(out, self.num_classes)


class FrozenBackbone:
    """A model whose backbone is frozen: its features computed without autograd, then the head with it.
    The same outputs as the whole model (its declared ``head(backbone(x))``), without the bookkeeping
    (and without activation checkpointing's recomputation) for the part nothing trains."""

    def __init__(self, parts: ModelParts) -> None:
        self.parts = parts

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            features = self.parts.features(x)
        return self.parts.head(features)


class Runner:
    """The forward pass of one fit: device, autocast, channels-last and optional compilation."""

    def __init__(
        self, model: nn.Module, training: Training, device: torch.device, num_classes: int, spec: Model
    ) -> None:
        self.device = device
        self.dtype = resolve_precision(training.precision, device)
        # Channels-last is faster for convolutions on GPUs and, through oneDNN, on CPUs too (about
        # 1.6x for efficientnet_lite0 on 2 cores: benchmarks/throughput.py).
        self.channels_last = training.channels_last is not False
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        forward: Forward = model
        if training.compile:  # one compilation per architecture and process, reused by every fit
            backend = training.compile if isinstance(training.compile, str) else "inductor"
            model, forward = compiled(model, extra=f"{device}|{self.channels_last}|{self.dtype}", backend=backend)
        self.model = model
        self.full: Forward = Logits(forward, num_classes, spec)
        self.scaler = torch.amp.GradScaler(device.type) if self.dtype == torch.float16 else None

    def autocast(self) -> AbstractContextManager[Any]:
        if self.dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)


@torch.inference_mode()  # no autograd bookkeeping at all; nothing of the pass outlives it but the outputs
def predict(
    forward: Forward, runner: Runner, num_classes: int, batches: Batches, index: np.ndarray, batch_size: int
) -> Predictions:
    runner.model.eval()
    logits = []
    for x, _, _ in batches(index, batch_size):
        stopping.check()
        with runner.autocast():
            logits.append(forward(x).float().cpu())
    z = torch.cat(logits) if logits else torch.empty(0, 1 if num_classes == 2 else num_classes)
    if num_classes == 2:
        z = z.squeeze(1)
        proba = torch.sigmoid(z)
    else:
        proba = torch.softmax(z, dim=1)
    return Predictions(index=np.asarray(index), logits=z.double().numpy(), proba=proba.double().numpy())
