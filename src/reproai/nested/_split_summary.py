"""Summaries of the splits: the size and class counts of every part of every split, and where keeping
groups together made stratification poor."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from reproai.nested._folds import OuterFold, Splits

__all__ = ["split_summary", "stratification_problems"]


def _parts(fold: OuterFold) -> list[tuple[str, np.ndarray]]:
    """Each part of a split (outer-train, outer-test, each inner train and dev), named, with its indices."""
    parts = [("outer-train", fold.train), ("outer-test", fold.test)]
    for j, inner in enumerate(fold.inner):
        parts += [(f"inner-{j}-train", inner.train), (f"inner-{j}-dev", inner.dev)]
    return parts


def split_summary(splits: Splits, labels: np.ndarray, classes: Sequence[str]) -> list[dict[str, object]]:
    """One row per part of every split (outer-train, outer-test, each inner train and dev): its number of
    images, of groups (with groups) and of images per class."""
    labels = np.asarray(labels)
    g = None if splits.groups is None else np.asarray(splits.groups, dtype=object)
    rows: list[dict[str, object]] = []
    for fold in splits.outer:
        for part, index in _parts(fold):
            counts = np.bincount(labels[index], minlength=len(classes))
            rows.append(
                {
                    "repeat": fold.repeat,
                    "outer_fold": fold.fold,
                    "part": part,
                    "images": len(index),
                    **({"groups": len(set(g[index].tolist()))} if g is not None else {}),
                    **{f"images_{c}": int(n) for c, n in zip(classes, counts, strict=True)},
                }
            )
    return rows


def stratification_problems(
    splits: Splits, labels: np.ndarray, classes: Sequence[str], *, tolerance: float = 0.15
) -> list[str]:
    """Where keeping groups together made stratification poor: a test or dev set without a class, or
    with a class proportion more than ``tolerance`` (absolute) from the data's. Each with the numbers."""
    labels = np.asarray(labels)
    overall = np.bincount(labels, minlength=len(classes)) / len(labels)
    found = []
    for fold in splits.outer:
        for part, index in _parts(fold):
            if not part.endswith(("test", "dev")):
                continue
            share = np.bincount(labels[index], minlength=len(classes)) / max(len(index), 1)
            where = f"outer fold {fold.key}, {part} ({len(index)} images)"
            missing = [c for c, n in zip(classes, share, strict=True) if n == 0]
            if missing:
                found.append(f"{where} has no image of class(es) {missing}")
            elif np.abs(share - overall).max() > tolerance:
                k = int(np.argmax(np.abs(share - overall)))
                found.append(f"{where} has {share[k]:.0%} of class {classes[k]!r} against {overall[k]:.0%} in the data")
    return found
