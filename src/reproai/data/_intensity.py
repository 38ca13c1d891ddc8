"""The intensity policy (:class:`reproai.Intensity`): from the values of an image with more than 8 bits per
sample to the 8-bit grey levels the network sees. Pure NumPy; the DICOM reader applies the file's own
window through pydicom (:mod:`reproai.data._dicom`)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from reproai.config._schema import Intensity

__all__ = ["as_intensity", "intensity_dict", "intensity_key", "window_bounds", "to_grey", "apply_intensity", "LEGACY"]

# What a model saved before the policy existed decoded with: each image scaled by its own maximum.
LEGACY = Intensity(kind="max")


def as_intensity(value: Intensity | dict[str, Any] | None) -> Intensity:
    """``value`` as an :class:`Intensity`: itself, one from :func:`intensity_dict`'s form, or the default."""
    if value is None:
        return Intensity()
    if isinstance(value, Intensity):
        return value
    return Intensity(**value)


def intensity_dict(value: Intensity | dict[str, Any] | None) -> dict[str, Any]:
    """The policy as plain JSON values (for ``preprocessing.json``, the cache key and the fingerprint)."""
    policy = as_intensity(value)
    return {
        "kind": policy.kind,
        "center": None if policy.center is None else float(policy.center),
        "width": None if policy.width is None else float(policy.width),
        "percentiles": [float(q) for q in policy.percentiles],
    }


def intensity_key(value: Intensity | dict[str, Any] | None) -> str:
    """A short text that is equal for equal policies."""
    return json.dumps(intensity_dict(value), sort_keys=True, separators=(",", ":"))


def window_bounds(values: np.ndarray, policy: Intensity) -> tuple[float, float]:
    """The window ``(low, high)`` that ``policy`` gives an image of ``values`` (any shape), in its units.

    ``"auto"`` means ``"percentile"`` here: the caller applies a DICOM file's own window first. ``"max"``
    has no window: :func:`apply_intensity` scales by the maximum as reproai always did.
    """
    if policy.kind == "window":
        assert policy.center is not None and policy.width is not None  # the config's validation says so
        return policy.center - policy.width / 2.0, policy.center + policy.width / 2.0
    low, high = np.percentile(values, list(policy.percentiles)) if values.size else (0.0, 1.0)
    return float(low), float(high)


def to_grey(values: np.ndarray, low: float, high: float, *, invert: bool = False) -> np.ndarray:
    """``values`` mapped linearly from ``[low, high]`` onto 0-255 (clipped, rounded): uint8 of the same shape.

    ``invert``: bright for low values (DICOM's MONOCHROME1). A window of no width (a constant image)
    maps values above it to 255 and the others to 0.
    """
    scale = 255.0 / (high - low) if high > low else np.inf
    with np.errstate(invalid="ignore"):  # inf * 0 for a value on an empty window: NaN, clipped below
        grey = (values.astype(np.float32, copy=False) - np.float32(low)) * np.float32(scale)
    grey = np.nan_to_num(grey, nan=0.0, posinf=255.0, neginf=0.0)
    np.clip(grey, 0.0, 255.0, out=grey)
    if invert:
        np.subtract(255.0, grey, out=grey)
    return np.rint(grey).astype(np.uint8)


def apply_intensity(
    values: np.ndarray, policy: Intensity, *, invert: bool = False, stats: np.ndarray | None = None
) -> np.ndarray:
    """``values`` (an image's samples, any shape, in its units) as uint8 grey levels under ``policy``; a
    per-image window is taken from ``stats`` (default: ``values``; the image's values where ``values`` is
    a table of levels)."""
    stats = values if stats is None else stats
    if policy.kind == "max":  # exactly as reproai scaled before the policy existed: truncated, in float64
        hi = float(stats.max()) if stats.size else 0.0
        grey = (values.astype(np.float64) * (255.0 / (hi or 1.0))).clip(0, 255).astype(np.uint8)
        return 255 - grey if invert else grey
    low, high = window_bounds(stats, policy)
    return to_grey(values, low, high, invert=invert)
