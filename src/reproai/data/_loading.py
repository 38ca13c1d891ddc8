"""From a config's ``Data`` to decoded images: list the examples, apply the duplicate policy and the
limit, decode (once, through the cache) and fingerprint."""

from __future__ import annotations

import hashlib
import warnings
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from reproai.config._registry import describe, registry, target_and_kwargs
from reproai.config._schema import Data, Intensity
from reproai.data._cache import cached_decode
from reproai.data._custom import source_from_factory
from reproai.data._dicom import DICOM_PREFIX, dicom_groups
from reproai.data._images import decode_files
from reproai.data._intensity import intensity_dict
from reproai.data._source import ImageSet, Source, subset
from reproai.errors import DataError

__all__ = ["list_source", "load_images", "duplicate_files"]


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
    return subset(source, np.asarray([i for i in range(len(source.ids)) if i not in drop], dtype=np.int64))


def list_source(data: Data, *, seed: int = 0) -> Source:
    """The examples of ``data``, checked, with ``data.duplicates`` applied, and limited to
    ``data.limit`` (stratified) when set."""
    target, _ = target_and_kwargs(data.kind)
    entry = registry("dataset").entry(target)
    source = entry.load()(data) if entry.meta.get("builtin") else source_from_factory(data)
    if len(source.ids) == 0:
        raise DataError(f"The dataset {describe(data.kind)} (data.root={data.root!r}) holds no examples.")
    source = _handle_duplicates(source, data)
    if data.limit is not None and data.limit < len(source.ids):
        from sklearn.model_selection import train_test_split

        index = np.arange(len(source.ids))
        counts = np.bincount(source.labels)
        stratify = source.labels if counts[counts > 0].min() >= 2 and data.limit >= len(counts) else None
        keep, _ = train_test_split(index, train_size=data.limit, random_state=seed, stratify=stratify)
        source = subset(source, np.sort(keep))
    if data.group is not None and data.group.startswith(DICOM_PREFIX):
        source = _dicom_groups(source, data)
    return source


def _dicom_groups(source: Source, data: Data) -> Source:
    """``source`` with each file's group read from its DICOM attribute; files that give none are an error,
    or, with ``data.on_error='skip'``, left out with a warning (they are not DICOM files, or lack it)."""
    assert data.group is not None
    if source.paths is None:
        raise DataError(
            f"data.group={data.group!r} reads each file's DICOM attribute, but the dataset "
            f"{describe(data.kind)} gives decoded images, not files."
        )
    groups, problems = dicom_groups(source.paths, data.group[len(DICOM_PREFIX) :])
    if problems:
        shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
        what = f"data.group={data.group!r}: {len(problems)} of {len(source.paths)} file(s) give no group: {shown}"
        if data.on_error != "skip" or len(problems) == len(source.paths):
            raise DataError(
                f"{what}. Every image needs its group: fill the attribute in, give the groups in a table "
                "column instead, or set data.on_error='skip' to leave such files out with a warning."
            )
        warnings.warn(f"{what}; left out (data.on_error='skip').", stacklevel=3)
    keep = np.asarray([i for i, g in enumerate(groups) if g is not None], dtype=np.int64)
    source = subset(source, keep)
    source.groups = [g for g in groups if g is not None]
    return source


def load_images(
    source: Source,
    size: int,
    *,
    on_error: str = "raise",
    progress: bool = True,
    cache: bool = True,
    cache_dir: str | None = None,
    intensity: Intensity | None = None,
) -> ImageSet:
    """Decode ``source`` to ``size x size`` RGB and fingerprint the data (ids, labels, groups and bytes,
    and the intensity policy where it applied).

    Files are decoded once into the image cache (see :mod:`reproai.data._cache`) and read from it
    afterwards; ``cache=False`` decodes into memory instead. ``intensity``: how images with more than 8
    bits per sample become 8 bits (default: :class:`reproai.Intensity`'s); the set's
    :meth:`~ImageSet.with_intensity` decodes the same files with another policy.
    """
    h = hashlib.sha256()
    if isinstance(source.arrays, list):  # decoded images of different sizes: fitted like decoded files
        from PIL import Image, ImageOps

        images = np.empty((len(source.arrays), size, size, 3), dtype=np.uint8)
        for i, a in enumerate(source.arrays):
            fitted = ImageOps.fit(Image.fromarray(a), (size, size), method=Image.Resampling.BILINEAR)
            images[i] = np.asarray(fitted, dtype=np.uint8)
            h.update(f"{a.shape}".encode())
            h.update(a.tobytes())
        keep = np.ones(len(source.ids), dtype=bool)
    elif source.arrays is not None:
        images = source.arrays
        if images.shape[1:3] != (size, size):
            import torch
            import torch.nn.functional as F

            t = torch.from_numpy(images).permute(0, 3, 1, 2).float()
            resized = F.interpolate(t, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
            images = resized.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        h.update(source.arrays.tobytes())
        keep = np.ones(len(source.ids), dtype=bool)
    else:
        assert source.paths is not None
        if cache:
            images, digests, keep, _ = cached_decode(
                source.paths, size, cache_dir=cache_dir, on_error=on_error, progress=progress, intensity=intensity
            )
        else:
            images, digests, keep = decode_files(
                source.paths, size, on_error=on_error, progress=progress, intensity=intensity
            )
        for digest in digests:
            h.update(digest.encode())
    ids = [i for i, k in zip(source.ids, keep, strict=True) if k]
    labels = source.labels[keep]
    groups = None if source.groups is None else np.asarray(source.groups, dtype=object)[keep].astype(str)
    h.update("\n".join(ids).encode())
    h.update(labels.tobytes())
    if groups is not None:  # data without groups keep the fingerprint they had
        h.update(("\ngroups\n" + "\n".join(groups)).encode())
    present = np.bincount(labels, minlength=len(source.classes))
    empty = [c for c, n in zip(source.classes, present, strict=True) if n == 0]
    if empty:
        raise DataError(
            f"Class(es) {empty} have no examples after loading; remove them from the data or check the files."
        )

    def reload(policy: Intensity) -> ImageSet:
        return load_images(
            source, size, on_error=on_error, progress=progress, cache=cache, cache_dir=cache_dir, intensity=policy
        )

    return ImageSet(
        ids=list(ids),
        labels=np.asarray(labels, dtype=np.int64),
        classes=source.classes,
        images=images,
        fingerprint=h.hexdigest()[:16],
        groups=groups,
        intensity=intensity_dict(intensity),
        reload=reload if source.paths is not None else None,
    )
