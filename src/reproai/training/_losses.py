"""Losses: the built-in cross-entropy (class weights, label smoothing) and user losses by name or object.

A loss is called as ``loss(logits, targets)``: logits ``(n, 1)`` for two classes (one logit, the log-odds
of class 1) and ``(n, k)`` for ``k > 2``; targets ``(n,)`` class indices (int64). It returns a scalar.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from reproai.config._registry import create, describe, registry, target_and_kwargs
from reproai.errors import ConfigError

__all__ = ["CrossEntropy", "balanced_class_weight", "make_loss", "check_loss", "LossFn"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def balanced_class_weight(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """``n / (k * count_c)`` per class c: scikit-learn's ``class_weight="balanced"``
    (``sklearn.utils.class_weight.compute_class_weight``). Shape ``(k,)``.

    Raises:
        ConfigError: a class has no example in ``labels``.
    """
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes).astype(np.float64)
    if (counts == 0).any():
        raise ConfigError(
            f"class_weight='balanced': class(es) {np.flatnonzero(counts == 0).tolist()} have no "
            "example in this fit's training set, so they have no weight."
        )
    return len(labels) / (num_classes * counts)


class CrossEntropy(nn.Module):
    """Cross-entropy over ``k`` logits, or binary cross-entropy over one logit for two classes.

    ``class_weight``: None, ``"balanced"`` (computed from this fit's training labels only, never dev or
    test data), or one weight per class. ``label_smoothing`` (Szegedy et al., 2016) mixes the one-hot
    target with the uniform distribution. Both are applied as ``torch.nn.CrossEntropyLoss`` applies
    them; for one logit ``z``, to the two-class logits ``(0, z)`` (whose softmax is ``sigmoid(z)``).
    """

    def __init__(
        self,
        num_classes: int,
        *,
        class_weight: str | Sequence[float] | None = None,
        label_smoothing: float = 0.0,
        train_labels: np.ndarray | None = None,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.label_smoothing = float(label_smoothing)
        weight: np.ndarray | None
        if class_weight is None:
            weight = None
        elif isinstance(class_weight, str):
            if class_weight != "balanced":
                raise ConfigError(
                    f"class_weight={class_weight!r}: use 'balanced', a list of per-class weights, or None."
                )
            if train_labels is None:
                raise ConfigError("class_weight='balanced' needs the fit's training labels.")
            weight = balanced_class_weight(train_labels, num_classes)
        else:
            weight = np.asarray(class_weight, dtype=np.float64)
            if weight.shape != (num_classes,):
                raise ConfigError(
                    f"class_weight must give one weight per class ({num_classes}), but got {list(class_weight)!r}."
                )
        self.weight: torch.Tensor | None
        self.register_buffer("weight", None if weight is None else torch.as_tensor(weight, dtype=torch.float32))

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        weight = None if self.weight is None else self.weight.to(logits.device)
        if self.num_classes != 2:
            return F.cross_entropy(logits.float(), targets, weight=weight, label_smoothing=self.label_smoothing)
        z = logits.reshape(-1, 1).float()
        if weight is None and not self.label_smoothing:
            return F.binary_cross_entropy_with_logits(z.squeeze(1), targets.float())
        # Two-class cross-entropy over the logits (0, z): softmax's class-1 probability is sigmoid(z), so this is
        # the same loss, with torch.nn.CrossEntropyLoss's weighting and smoothing.
        two = torch.cat([torch.zeros_like(z), z], dim=1)
        return F.cross_entropy(two, targets, weight=weight, label_smoothing=self.label_smoothing)


def make_loss(spec: Any, *, num_classes: int, train_labels: np.ndarray) -> LossFn:
    """The loss ``spec`` names for one fit. A class is instantiated with its keyword arguments (and
    ``num_classes`` / ``train_labels`` when its signature names them); a function is the loss itself,
    called with its keyword arguments bound."""
    target, kwargs = target_and_kwargs(spec)
    obj = registry("loss").entry(target).load()
    if inspect.isclass(obj):
        fill = {"num_classes": lambda: num_classes, "train_labels": lambda: np.asarray(train_labels)}
        return create("loss", spec, fill=fill)
    if not callable(obj):
        raise ConfigError(f"training.loss: {obj!r} is not callable; give a loss class or a function (logits, targets).")
    return functools.partial(obj, **kwargs) if kwargs else obj


def check_loss(spec: Any, num_classes: int) -> None:
    """Call the loss ``spec`` names once, on a batch of two, before any work: it must take
    ``(logits, targets)`` and return a scalar that depends on the logits.

    Raises:
        ConfigError: naming ``training.loss``, what it was given and what it did.
    """
    width = 1 if num_classes == 2 else num_classes
    logits = torch.zeros(2, width, requires_grad=True)
    targets = torch.tensor([0, num_classes - 1])
    given = f"logits of shape (2, {width}) and targets of shape (2,) int64"
    contract = "A loss is called as loss(logits, targets) and returns a scalar (reduce with .mean())."
    name = describe(spec)
    loss = make_loss(spec, num_classes=num_classes, train_labels=np.arange(num_classes))
    try:
        value = loss(logits, targets)
    except Exception as e:  # noqa: BLE001 - whatever the user's loss raises, said with its contract
        raise ConfigError(
            f"`training.loss`: {name} failed when called with {given}: {type(e).__name__}: {e}. {contract}"
        ) from e
    if not isinstance(value, torch.Tensor) or value.numel() != 1:
        shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise ConfigError(f"`training.loss`: {name} returned {shape} for {given}, not a scalar. {contract}")
    if not value.requires_grad:
        raise ConfigError(
            f"`training.loss`: {name} returned a value that does not depend on the logits (no gradient), for "
            f"{given}. {contract}"
        )
