"""Datasets of one's own: a factory that returns a :class:`Source`, or a map-style torch ``Dataset`` of
``(image, label)`` pairs, turned into a :class:`Source` that goes through the same decoding, splits,
leakage check and fingerprint as the built-in kinds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from reproai.config._registry import registry, target_and_kwargs
from reproai.config._schema import Data, Intensity
from reproai.config._tree import has_search_space
from reproai.data._intensity import apply_intensity, as_intensity
from reproai.data._source import Source
from reproai.errors import DataError

__all__ = ["source_from_factory", "source_from_dataset", "image_array"]


def _name(data: Data) -> str:
    target, _ = target_and_kwargs(data.kind)
    return target if isinstance(target, str) else getattr(target, "__qualname__", repr(target))


def source_from_factory(data: Data) -> Source:
    """Call the dataset factory ``data.kind`` with its keyword arguments and check what it returns.

    Raises:
        DataError: it returns neither a :class:`Source` nor a map-style dataset, or one that is
            inconsistent (the message names the factory and what to fix).
    """
    target, kwargs = target_and_kwargs(data.kind)
    factory = registry("dataset").entry(target).load()
    out = factory(**{**kwargs, **data.kwargs})
    name = _name(data)
    if isinstance(out, Source):
        return _checked(out, name)
    if hasattr(out, "__getitem__") and hasattr(out, "__len__"):
        return source_from_dataset(out, name=name, intensity=data.intensity)
    raise DataError(
        f"data.kind {name}() returned a {type(out).__name__}; a dataset factory returns a reproai.data.Source or a "
        "map-style torch Dataset whose items are (image, label)."
    )


def _checked(source: Source, name: str) -> Source:
    n = len(source.ids)
    labels = np.asarray(source.labels)
    if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(
            f"data.kind {name}(): Source.labels must be {n} integer class indices (one per id), but got "
            f"an array of shape {labels.shape} and dtype {labels.dtype}."
        )
    if n and (labels.min() < 0 or labels.max() >= len(source.classes)):
        raise DataError(
            f"data.kind {name}(): labels must lie in 0..{len(source.classes) - 1} (one per class in "
            f"Source.classes), but range from {labels.min()} to {labels.max()}."
        )
    if (source.paths is None) == (source.arrays is None):
        raise DataError(
            f"data.kind {name}(): a Source holds either paths (files to decode) or arrays, not "
            f"{'both' if source.paths is not None else 'neither'}."
        )
    if len(set(source.ids)) != n:
        raise DataError(f"data.kind {name}(): Source.ids must be unique; {n - len(set(source.ids))} repeat.")
    source.labels = labels.astype(np.int64)
    return source


def _policy(intensity: Intensity | None, where: str) -> Intensity | None:
    if intensity is not None and has_search_space(intensity):
        raise DataError(
            f"{where}: an image with more than 8 bits per sample, and data.intensity is a search space; a "
            "dataset that returns decoded images is read once, so its policy cannot be searched. Return "
            "a Source of files instead, or fix data.intensity."
        )
    return intensity


def image_array(image: Any, *, where: str, intensity: Intensity | None = None) -> np.ndarray:
    """An image as an ``(h, w, 3)`` uint8 RGB array: a PIL image (any mode), an ``(h, w)`` / ``(h, w, c)``
    array or a ``(c, h, w)`` tensor, uint8 (0-255) or float (0-1, as torchvision's ``ToTensor`` gives), or
    a one-channel image of more than 8 bits (a PIL ``I;16`` image, a uint16 or int16 array), made 8 bits
    by ``intensity`` (default: :class:`reproai.Intensity`'s).

    Raises:
        DataError: another type, shape or range; the message names ``where``.
    """
    from PIL import Image

    from reproai.data._images import is_deep, to_rgb

    if isinstance(image, Image.Image):
        policy = _policy(intensity, where) if is_deep(image) else None
        return np.asarray(to_rgb(image, policy), dtype=np.uint8)
    chw = False
    if hasattr(image, "detach") and hasattr(image, "numpy"):  # a torch tensor, channels first
        image, chw = image.detach().cpu().numpy(), True
    if not isinstance(image, np.ndarray):
        raise DataError(
            f"{where}: an image must be a PIL image, a NumPy array or a torch tensor, not {type(image).__name__}."
        )
    a = image
    if chw and a.ndim == 3:
        a = np.moveaxis(a, 0, -1)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[-1] not in (1, 3, 4):
        raise DataError(
            f"{where}: an image array must be (h, w), (h, w, c) or, as a tensor, (c, h, w) with c in "
            f"1, 3, 4, but got shape {image.shape}."
        )
    if np.issubdtype(a.dtype, np.floating):
        if a.size and (a.min() < 0.0 or a.max() > 1.0):
            raise DataError(
                f"{where}: a float image must lie in [0, 1] (as ToTensor gives), but ranges from "
                f"{a.min():.3g} to {a.max():.3g}; give uint8 0-255 instead."
            )
        a = np.round(a * 255.0)
    elif a.dtype in (np.uint16, np.int16, np.uint32, np.int32) and a.shape[-1] == 1:
        a = apply_intensity(a[..., 0], as_intensity(_policy(intensity, where)))[..., None]
    elif a.dtype != np.uint8:
        raise DataError(
            f"{where}: an image must be uint8 (0-255), float (0-1) or, with one channel, 16 or 32-bit "
            f"integers, not {a.dtype}{f' with {a.shape[-1]} channels' if a.shape[-1] != 1 else ''}."
        )
    a = a.astype(np.uint8)
    if a.shape[-1] == 1:
        a = np.repeat(a, 3, axis=-1)
    elif a.shape[-1] == 4:
        a = np.asarray(to_rgb(Image.fromarray(a, mode="RGBA")), dtype=np.uint8)
    return np.ascontiguousarray(a)


def source_from_dataset(
    dataset: Any, *, name: str = "dataset", progress: bool = True, intensity: Intensity | None = None
) -> Source:
    """Read a map-style dataset of ``(image, label)`` items once into a :class:`Source` of arrays.

    The dataset's ``classes`` attribute names the classes (torchvision's convention; default: the
    labels' values as text) and its ``ids`` attribute the examples (default: their positions). Images
    with more than 8 bits per sample become 8 bits through ``intensity`` (see :func:`image_array`).
    """
    from tqdm.auto import tqdm

    n = len(dataset)
    images, labels = [], []
    for i in tqdm(range(n), desc=f"read {name}", unit="img", disable=not progress or n < 100, leave=False):
        item = dataset[i]
        if not isinstance(item, (tuple, list)) or len(item) < 2:
            raise DataError(
                f"data.kind {name}(): item {i} of the dataset is {type(item).__name__}; each item must be "
                "(image, label)."
            )
        image, label = item[0], item[1]
        images.append(image_array(image, where=f"data.kind {name}(), item {i}", intensity=intensity))
        labels.append(int(label))
    classes: Sequence[Any] | None = getattr(dataset, "classes", None)
    class_names = [str(c) for c in classes] if classes is not None else [str(c) for c in range(max(labels) + 1)]
    ids = [str(i) for i in getattr(dataset, "ids", range(n))]
    if len(ids) != n:
        raise DataError(f"data.kind {name}(): the dataset's ids ({len(ids)}) do not match its length ({n}).")
    shapes = {a.shape for a in images}
    arrays: np.ndarray | list[np.ndarray] = np.stack(images) if len(shapes) == 1 else images
    return _checked(
        Source(ids=ids, labels=np.asarray(labels, dtype=np.int64), classes=class_names, arrays=arrays), name
    )
