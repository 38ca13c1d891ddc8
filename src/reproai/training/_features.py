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
from torch import nn

from reproai.config._schema import Model
from reproai.data._source import ImageSet
from reproai.models._backbones import BackboneInfo, pretrained_identity
from reproai.models._network import model_parts
from reproai.runtime import _stopping as stopping
from reproai.training._batching import Batch

__all__ = ["backbone_features", "clear_feature_cache"]

_MEMORY: OrderedDict[str, torch.Tensor] = OrderedDict()
_MEMORY_ITEMS = 4


def clear_feature_cache() -> None:
    _MEMORY.clear()


@torch.no_grad()
def backbone_features(
    model: nn.Module,
    spec: Model,
    data: ImageSet,
    info: BackboneInfo,
    batches: Callable[[np.ndarray, int], Iterator[Batch]],
    *,
    batch_size: int,
    progress: bool = False,
) -> torch.Tensor:
    """Features of every example through the model's backbone (see :func:`reproai.models._network.model_parts`) in
    eval mode, cached in memory by
    (backbone weights, data fingerprint, input size). ``batches`` yields normalised images."""
    from tqdm.auto import tqdm

    wkey = pretrained_identity(spec)  # None: random weights, not cacheable
    key = None
    if wkey is not None:
        key = hashlib.sha256(f"{wkey}|{data.fingerprint}|{info.image_size}|{info.mean}|{info.std}".encode()).hexdigest()
        if key in _MEMORY:
            _MEMORY.move_to_end(key)
            return _MEMORY[key]
    parts = model_parts(model)
    if parts is None:
        raise ValueError(f"{type(model).__name__} declares no backbone: there are no backbone features to cache.")
    was_training = model.training
    for module in parts.modules:
        module.eval()
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
        out.append(parts.features(x).float().cpu())
    model.train(was_training)
    features = torch.cat(out)
    if key is not None:
        _MEMORY[key] = features
        while len(_MEMORY) > _MEMORY_ITEMS:
            _MEMORY.popitem(last=False)
    return features
