"""Datasets by name: each builder lists the examples (ids, labels, classes, files or arrays).

Builders are registered with :func:`register_dataset`, so that a config names its data by ``kind``
and a new kind is one function away.
"""

from __future__ import annotations

import hashlib
import warnings
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reproai.config.schema import Data
from reproai.data.cache import cached_decode
from reproai.data.images import decode_files
from reproai.errors import DataError

__all__ = ["Source", "ImageSet", "DATASETS", "register_dataset", "list_source", "load_images", "duplicate_files"]


@dataclass
class Source:
    """The examples of a dataset before decoding: one id and label each, and files or arrays."""

    ids: list[str]
    labels: np.ndarray
    classes: list[str]
    paths: list[Path] | None = None
    arrays: np.ndarray | None = None  # already decoded, (n, h, w, 3) uint8

    @property
    def native_size(self) -> int | None:
        return None if self.arrays is None else int(self.arrays.shape[1])


@dataclass
class ImageSet:
    """Decoded examples, all the same size: images ``(n, h, w, 3)`` uint8, labels, ids, classes."""

    ids: list[str]
    labels: np.ndarray
    classes: list[str]
    images: np.ndarray
    fingerprint: str

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def num_classes(self) -> int:
        return len(self.classes)


DATASETS: dict[str, Callable[[Data], Source]] = {}


def register_dataset(kind: str) -> Callable[[Callable[[Data], Source]], Callable[[Data], Source]]:
    """Register a function ``Data -> Source`` under ``kind``."""

    def decorator(fn: Callable[[Data], Source]) -> Callable[[Data], Source]:
        DATASETS[kind] = fn
        return fn

    return decorator


def _root(data: Data) -> Path:
    if not data.root:
        raise DataError(
            f"data.root is not set for a {data.kind!r} dataset; set it in the config or with --set data.root=PATH."
        )
    return Path(data.root).expanduser()


@register_dataset("oxford_pets")
def _oxford_pets(data: Data) -> Source:
    from torchvision.datasets import OxfordIIITPet

    target = data.target or "species"
    if target not in ("species", "breed"):
        raise DataError(f"data.target={target!r} is not valid for oxford_pets; use 'species' (cat vs dog) or 'breed'.")
    root = _root(data)
    kind = "binary-category" if target == "species" else "category"
    ids, labels, paths = [], [], []
    classes: list[str] = []
    for split in ("trainval", "test"):
        try:
            ds = OxfordIIITPet(root, split=split, target_types=kind, download=data.download)
        except RuntimeError as e:
            raise DataError(
                f"Oxford-IIIT Pet not found under data.root={str(root)!r} ({e}). Point data.root at the "
                "folder holding oxford-iiit-pet/, or set data.download=True on a machine with internet."
            ) from e
        raw = ds._bin_labels if target == "species" else ds._labels
        classes = ["cat", "dog"] if target == "species" else list(ds.classes)
        for path, label in zip(ds._images, raw, strict=True):
            paths.append(Path(path))
            ids.append(Path(path).name)
            labels.append(int(label))
    _add_unannotated_pets(data, Path(ds._images_folder), target, classes, ids, labels, paths)
    return Source(ids=ids, labels=np.asarray(labels, dtype=np.int64), classes=classes, paths=paths)


def _add_unannotated_pets(
    data: Data, folder: Path, target: str, classes: list[str], ids: list[str], labels: list[int], paths: list[Path]
) -> None:
    """Label images that have no annotation line from their file names, or report that they are left out."""
    listed = set(ids)
    extra = sorted(p for p in folder.glob("*.jpg") if p.name not in listed)
    if not extra:
        return
    if data.unannotated == "skip":
        warnings.warn(
            f"{len(extra)} image(s) in {folder} have no annotation line and are left out "
            f"(data.unannotated='skip'): {[p.name for p in extra][:5]}",
            stacklevel=3,
        )
        return
    added, unknown = [], []
    for path in extra:
        breed = path.stem.rsplit("_", 1)[0]
        if target == "species":
            label = 0 if breed[:1].isupper() else 1  # the dataset's convention: cat breeds are capitalised
        else:
            name = " ".join(part.title() for part in breed.split("_"))  # torchvision's class naming
            if name not in classes:
                unknown.append(path.name)
                continue
            label = classes.index(name)
        ids.append(path.name)
        labels.append(label)
        paths.append(path)
        added.append(path.name)
    warnings.warn(
        f"{len(added)} image(s) in {folder} have no annotation line and were labelled from their file "
        f"names (set data.unannotated='skip' to leave them out): {added[:5]}"
        + (f"; {len(unknown)} of an unknown breed left out: {unknown[:5]}" if unknown else ""),
        stacklevel=3,
    )


@register_dataset("image_folder")
def _image_folder(data: Data) -> Source:
    from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

    root = _root(data)
    if not root.is_dir():
        raise DataError(
            f"data.root={str(root)!r} is not a folder; an image-folder dataset needs one sub-folder per class under it."
        )
    try:
        classes, class_to_idx = find_classes(str(root))
        samples = make_dataset(str(root), class_to_idx, extensions=IMG_EXTENSIONS + (".gif",))
    except FileNotFoundError as e:
        raise DataError(f"{e} (data.root={str(root)!r}); put each class's images in its own sub-folder.") from e
    paths = [Path(p) for p, _ in samples]
    return Source(
        ids=[str(p.relative_to(root)) for p in paths],
        labels=np.asarray([y for _, y in samples], dtype=np.int64),
        classes=classes,
        paths=paths,
    )


@register_dataset("digits")
def _digits(data: Data) -> Source:
    from sklearn.datasets import load_digits

    digits = load_digits()
    gray = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
    return Source(
        ids=[f"digit-{i:04d}" for i in range(len(gray))],
        labels=digits.target.astype(np.int64),
        classes=[str(c) for c in digits.target_names],
        arrays=np.repeat(gray[..., None], 3, axis=-1),
    )


def _subset(source: Source, keep: np.ndarray) -> Source:
    return Source(
        ids=[source.ids[i] for i in keep],
        labels=source.labels[keep],
        classes=source.classes,
        paths=None if source.paths is None else [source.paths[i] for i in keep],
        arrays=None if source.arrays is None else source.arrays[keep],
    )


def duplicate_files(paths: Sequence[Path]) -> list[list[int]]:
    """Groups (of indices) of byte-identical files; only files of equal size are read."""
    by_size: dict[int, list[int]] = defaultdict(list)
    for i, path in enumerate(paths):
        try:
            by_size[path.stat().st_size].append(i)
        except OSError as e:
            raise DataError(f"Cannot read image file {path}: {e}.") from e
    groups = []
    for same_size in by_size.values():
        if len(same_size) < 2:
            continue
        by_digest: dict[str, list[int]] = defaultdict(list)
        for i in same_size:
            by_digest[hashlib.sha256(paths[i].read_bytes()).hexdigest()].append(i)
        groups += [g for g in by_digest.values() if len(g) > 1]
    return sorted(groups)


def _handle_duplicates(source: Source, data: Data) -> Source:
    """Apply ``data.duplicates`` to byte-identical files: a copy in training data and another in test
    data would inflate the test score (and copies with different labels contradict each other)."""
    if source.paths is None or data.duplicates == "keep":
        return source
    groups = duplicate_files(source.paths)
    if not groups:
        return source
    shown = "; ".join(
        " = ".join(f"{source.ids[i]} ({source.classes[source.labels[i]]})" for i in g) for g in groups[:5]
    )
    if data.duplicates == "error":
        raise DataError(
            f"{len(groups)} group(s) of identical files under data.root={data.root!r}: {shown}"
            f"{' ...' if len(groups) > 5 else ''}. Copies in both training and test data inflate the "
            "score. Remove them, or set data.duplicates='drop' (keep one of each) or 'keep'."
        )
    drop: set[int] = set()
    for g in groups:
        drop |= set(g) if len({int(source.labels[i]) for i in g}) > 1 else set(g[1:])
    warnings.warn(
        f"data.duplicates='drop': left out {len(drop)} file(s) of {len(groups)} group(s) of identical "
        f"files (one of each kept; none where their labels disagree): {shown}",
        stacklevel=3,
    )
    return _subset(source, np.asarray([i for i in range(len(source.ids)) if i not in drop], dtype=np.int64))


def list_source(data: Data, *, seed: int = 0) -> Source:
    """The examples of ``data``, checked, with ``data.duplicates`` applied, and limited to
    ``data.limit`` (stratified) when set."""
    source = DATASETS[data.kind](data)
    if len(source.ids) == 0:
        raise DataError(f"The {data.kind!r} dataset at data.root={data.root!r} holds no examples.")
    source = _handle_duplicates(source, data)
    if data.limit is not None and data.limit < len(source.ids):
        from sklearn.model_selection import train_test_split

        index = np.arange(len(source.ids))
        counts = np.bincount(source.labels)
        stratify = source.labels if counts[counts > 0].min() >= 2 and data.limit >= len(counts) else None
        keep, _ = train_test_split(index, train_size=data.limit, random_state=seed, stratify=stratify)
        source = _subset(source, np.sort(keep))
    return source


def load_images(
    source: Source,
    size: int,
    *,
    on_error: str = "raise",
    progress: bool = True,
    cache: bool = True,
    cache_dir: str | None = None,
) -> ImageSet:
    """Decode ``source`` to ``size x size`` RGB and fingerprint the data (ids, labels and bytes).

    Files are decoded once into the image cache (see :mod:`reproai.data.cache`) and read from it
    afterwards; ``cache=False`` decodes into memory instead.
    """
    h = hashlib.sha256()
    if source.arrays is not None:
        images = source.arrays
        if images.shape[1:3] != (size, size):
            import torch
            import torch.nn.functional as F

            t = torch.from_numpy(images).permute(0, 3, 1, 2).float()
            resized = F.interpolate(t, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
            images = resized.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        h.update(source.arrays.tobytes())
        ids, labels = source.ids, source.labels
    else:
        assert source.paths is not None
        if cache:
            images, digests, keep, _ = cached_decode(
                source.paths, size, cache_dir=cache_dir, on_error=on_error, progress=progress
            )
        else:
            images, digests, keep = decode_files(source.paths, size, on_error=on_error, progress=progress)
        ids = [i for i, k in zip(source.ids, keep, strict=True) if k]
        labels = source.labels[keep]
        for digest in digests:
            h.update(digest.encode())
    h.update("\n".join(ids).encode())
    h.update(labels.tobytes())
    present = np.bincount(labels, minlength=len(source.classes))
    empty = [c for c, n in zip(source.classes, present, strict=True) if n == 0]
    if empty:
        raise DataError(
            f"Class(es) {empty} have no examples after loading; remove them from the data or check the files."
        )
    return ImageSet(
        ids=list(ids),
        labels=np.asarray(labels, dtype=np.int64),
        classes=source.classes,
        images=images,
        fingerprint=h.hexdigest()[:16],
    )
