"""Backbone features, computed once per image and backbone weights, for phases with a frozen backbone.

A frozen backbone in eval mode is a fixed function of the image: training the head on its cached
outputs gives the same result as training through it (up to float rounding), at a fraction of the cost.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Iterator

import numpy as np
import torch

from reproai import stopping
from reproai.batching import Batch
from reproai.config.schema import Model
from reproai.data.datasets import ImageSet
from reproai.models import BackboneInfo, Classifier, pretrained_identity

__all__ = ["backbone_features", "clear_feature_cache"]

_MEMORY: OrderedDict[str, torch.Tensor] = OrderedDict()
_MEMORY_ITEMS = 4


def clear_feature_cache() -> None:
    _MEMORY.clear()


@torch.no_grad()
def backbone_features(
    model: Classifier,
    spec: Model,
    data: ImageSet,
    info: BackboneInfo,
    batches: Callable[[np.ndarray, int], Iterator[Batch]],
    *,
    batch_size: int,
    progress: bool = False,
) -> torch.Tensor:
    """Features of every example through ``model.backbone`` in eval mode, cached in memory by
    (backbone weights, data fingerprint, input size). ``batches`` yields normalised images."""
    from tqdm.auto import tqdm

    wkey = pretrained_identity(spec)  # None: random weights, not cacheable
    key = None
    if wkey is not None:
        key = hashlib.sha256(f"{wkey}|{data.fingerprint}|{info.image_size}|{info.mean}|{info.std}".encode()).hexdigest()
        if key in _MEMORY:
            _MEMORY.move_to_end(key)
            return _MEMORY[key]
    was_training = model.backbone.training
    model.backbone.eval()
    out = []
    index = np.arange(len(data))
    for x, _, _ in tqdm(
        batches(index, batch_size),
        total=-(-len(data) // batch_size),
        desc="backbone features",
        unit="batch",
        disable=not progress,
        leave=False,
    ):
        stopping.check()
        out.append(model.backbone(x).float().cpu())
    model.backbone.train(was_training)
    features = torch.cat(out)
    if key is not None:
        _MEMORY[key] = features
        while len(_MEMORY) > _MEMORY_ITEMS:
            _MEMORY.popitem(last=False)
    return features
