"""The examples of a dataset: before decoding (:class:`Source`) and decoded (:class:`ImageSet`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Source", "ImageSet", "subset", "is_hidden", "HIDDEN_NAMES"]

# Names that file managers and tools leave among the data (Jupyter, macOS, Windows, Synology): never a
# class or an example, like any name that starts with a dot.
HIDDEN_NAMES = frozenset({"__MACOSX", "Thumbs.db", "desktop.ini", "@eaDir"})


def is_hidden(name: str) -> bool:
    """Whether a file or folder name is one that never holds data (``.ipynb_checkpoints``, ``.DS_Store``,
    ``__MACOSX``, ``Thumbs.db``, ``@eaDir``)."""
    return name.startswith(".") or name in HIDDEN_NAMES


@dataclass
class Source:
    """The examples of a dataset before decoding: one id and label each, and files or arrays.

    ``groups``: one group per example (a patient, subject, lesion or site); every split keeps each group
    on one side.
    """

    ids: list[str]
    labels: np.ndarray
    classes: list[str]
    paths: list[Path] | None = None
    # Already decoded: (n, h, w, 3) uint8, or a list of (h, w, 3) uint8 arrays of different sizes.
    arrays: np.ndarray | list[np.ndarray] | None = None
    groups: list[str] | None = None

    @property
    def native_size(self) -> int | None:
        """The images' size when they are arrays of one size; None otherwise."""
        if isinstance(self.arrays, np.ndarray):
            return int(self.arrays.shape[1])
        return None

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class ImageSet:
    """Decoded examples, all the same size: images ``(n, h, w, 3)`` uint8, labels, ids, classes, and
    the examples' groups when the data has them. ``intensity``: the intensity policy the files were
    decoded with (:func:`reproai.data._intensity.intensity_dict`'s form)."""

    ids: list[str]
    labels: np.ndarray
    classes: list[str]
    images: np.ndarray
    fingerprint: str
    groups: np.ndarray | None = None  # (n,) str
    intensity: dict[str, Any] | None = None
    # Decodes the same files with another intensity policy; None for data given as arrays.
    reload: Callable[[Any], ImageSet] | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.ids)

    def with_intensity(self, intensity: Any) -> ImageSet:
        """The same examples decoded with ``intensity`` (a :class:`reproai.Intensity`): itself when the
        policy is the one it was decoded with or its images are not files; otherwise through the cache.

        Raises:
            DataError: the other policy leaves other files decodable (with ``on_error='skip'``).
        """
        from reproai.data._intensity import intensity_dict

        if self.reload is None or intensity_dict(intensity) == self.intensity:
            return self
        other = self.reload(intensity)
        if other.ids != self.ids:
            from reproai.errors import DataError

            raise DataError(
                f"Decoded with data.intensity={intensity!r}, {len(other)} images are left where the study's "
                f"first policy left {len(self)}; a search over the intensity policy needs the same images "
                "under every policy."
            )
        return other

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def subset(source: Source, keep: np.ndarray) -> Source:
    """The examples at positions ``keep``."""
    arrays: Any = source.arrays
    if isinstance(arrays, list):
        arrays = [arrays[i] for i in keep]
    elif arrays is not None:
        arrays = arrays[keep]
    return Source(
        ids=[source.ids[i] for i in keep],
        labels=source.labels[keep],
        classes=source.classes,
        paths=None if source.paths is None else [source.paths[i] for i in keep],
        arrays=arrays,
        groups=None if source.groups is None else [source.groups[i] for i in keep],
    )
