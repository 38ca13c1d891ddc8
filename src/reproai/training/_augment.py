"""Augmentations of training images: built-in policies by name, or any torchvision transform.

Transforms are applied to one image at a time, a uint8 tensor ``(3, h, w)``, and return the same.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import torch

from reproai.config._registry import registry, target_and_kwargs

__all__ = ["make_augment", "flip", "autoaugment", "randaugment", "trivialaugment"]

Transform = Callable[[torch.Tensor], torch.Tensor]


def _with_flip(*policy: Transform) -> Transform:
    from torchvision.transforms import v2

    return v2.Compose([v2.RandomHorizontalFlip(), *policy])


def flip() -> Transform:
    """A random horizontal flip."""
    return _with_flip()


def autoaugment() -> Transform:
    """A flip, then AutoAugment's ImageNet policy (Cubuk et al., 2019)."""
    from torchvision.transforms import v2

    return _with_flip(v2.AutoAugment())


def randaugment() -> Transform:
    """A flip, then RandAugment (Cubuk et al., 2020)."""
    from torchvision.transforms import v2

    return _with_flip(v2.RandAugment())


def trivialaugment() -> Transform:
    """A flip, then TrivialAugment Wide (Müller & Hutter, 2021)."""
    from torchvision.transforms import v2

    return _with_flip(v2.TrivialAugmentWide())


def _make_one(spec: Any) -> Transform:
    target, kwargs = target_and_kwargs(spec)
    entry = registry("augmentation").entry(target)
    obj = entry.load()
    if entry.meta.get("factory") or inspect.isclass(obj):
        return obj(**{**entry.defaults, **kwargs})
    return functools.partial(obj, **kwargs) if kwargs else obj


def make_augment(spec: Any) -> Transform | None:
    """The training augmentation ``spec`` describes: None, a name (``"flip"``, ``"autoaugment"``, ...),
    a :class:`~reproai.Component` of a torchvision transform, a function of one image, or a list of
    these applied in order."""
    if spec is None:
        return None
    if isinstance(spec, (list, tuple)):
        from torchvision.transforms import v2

        return v2.Compose([_make_one(s) for s in spec])
    return _make_one(spec)
