"""Decode image files robustly into fixed-size RGB uint8 arrays.

The Oxford-IIIT Pet dataset, like many scraped datasets, holds files whose name lies about their
format (a GIF or a PNG named ``.jpg``), palette and alpha images, grayscale and CMYK JPEGs. Files are
read by content, not by name: DICOM files (by their ``DICM`` marker) with pydicom, the others with Pillow,
so all of them decode; transparency is composited on white. Images with more than 8 bits per sample
(16-bit PNG and TIFF, DICOM) become 8 bits through the intensity policy (:class:`reproai.Intensity`).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from reproai.config._schema import Intensity
from reproai.data._dicom import is_dicom, read_dicom
from reproai.data._intensity import apply_intensity, as_intensity, intensity_key
from reproai.errors import DataError
from reproai.runtime import _stopping as stopping

__all__ = ["decode_image", "decode_files", "decoder_error", "to_rgb", "is_deep"]


def is_deep(image: Image.Image) -> bool:
    """Whether a Pillow image has more than 8 bits per sample (modes I;16*, I, F): the intensity policy applies."""
    return image.mode.startswith("I") or image.mode == "F"


def to_rgb(image: Image.Image, intensity: Intensity | None = None) -> Image.Image:
    """Convert any Pillow mode (P, PA, LA, RGBA, L, I;16, CMYK, ...) to RGB; images with more than 8 bits
    per sample through ``intensity`` (default: :class:`reproai.Intensity`'s, a per-image percentile window)."""
    if image.mode in ("P", "PA"):
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "La", "RGBa"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if is_deep(image):
        image = Image.fromarray(apply_intensity(np.asarray(image), as_intensity(intensity)), mode="L")
    return image.convert("RGB")


def decoder_error(e: BaseException) -> str:
    """A decoder's exception in words, without the in-memory file object Pillow names in its message."""
    return f"{type(e).__name__}: " + re.sub(r"\s*<_io\.BytesIO object at 0x[0-9a-fA-F]+>", "", str(e))


def _decode(data: bytes, size: int, name: str, intensity: Intensity) -> tuple[np.ndarray, bool]:
    """The ``(size, size, 3)`` image, and whether the intensity policy applied to it."""
    try:
        if is_dicom(data):
            pixels = read_dicom(data, intensity, name=name)
            deep = pixels.ndim == 2
            image = Image.fromarray(pixels)
            if image.size != (size, size):  # resized as one channel, then made RGB: a third of the work
                image = ImageOps.fit(image, (size, size), method=Image.Resampling.BILINEAR)
            rgb = image.convert("RGB")
        else:
            with Image.open(io.BytesIO(data)) as file:
                file.seek(0)  # the first frame of an animated GIF
                image = ImageOps.exif_transpose(file) if hasattr(file, "getexif") else file
                deep = is_deep(image)
                rgb = to_rgb(image, intensity)
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001 - any decoder failure (a decompression bomb, a truncated file, ...)
        reason = f"Cannot decode image {name}: {decoder_error(e)}"
        if name.lower().endswith((".dcm", ".dicom")):  # named DICOM, read as DICOM only by its content
            reason += " (nor is it a DICOM file: no 'DICM' marker after a 128-byte preamble)"
        raise DataError(reason) from e
    if rgb.size != (size, size):
        rgb = ImageOps.fit(rgb, (size, size), method=Image.Resampling.BILINEAR)
    return np.asarray(rgb, dtype=np.uint8), deep


def decode_image(data: bytes, size: int, *, name: str = "<bytes>", intensity: Intensity | None = None) -> np.ndarray:
    """Decode image bytes (any format Pillow reads, or DICOM) to a ``(size, size, 3)`` uint8 array: resize
    the short side, centre-crop. ``intensity``: how images with more than 8 bits per sample become 8 bits
    (default: :class:`reproai.Intensity`'s).

    Raises:
        DataError: the bytes cannot be decoded (the message names ``name`` and the decoder's reason).
    """
    try:
        return _decode(data, size, name, as_intensity(intensity))[0]
    except DataError as e:
        raise DataError(f"{str(e).rstrip('.')}. {_ADVICE}") from e.__cause__ or e


_ADVICE = "Remove or replace the file, or set data.on_error='skip' to leave undecodable files out with a warning."


def _read_and_decode(path: Path, size: int, intensity: Intensity) -> tuple[np.ndarray | None, str, str | None]:
    try:
        data = path.read_bytes()
    except OSError as e:
        return None, "", f"Cannot read image file {path}: {e}"
    digest = hashlib.sha256(data).hexdigest()
    try:
        image, deep = _decode(data, size, str(path), intensity)
    except DataError as e:  # the reason alone: the advice depends on data.on_error
        return None, digest, str(e).rstrip(".")
    # The policy is part of what the file decodes to: recorded (and fingerprinted) where it applied.
    return image, f"{digest}|{intensity_key(intensity)}" if deep else digest, None


def decode_files(
    paths: Sequence[Path],
    size: int,
    *,
    on_error: str = "raise",
    progress: bool = True,
    intensity: Intensity | None = None,
) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Decode files in parallel threads (Pillow and pydicom's decoders release the GIL while decoding).

    Returns the images ``(n_ok, size, size, 3)``, the sha256 of each kept file's bytes (followed by the
    intensity policy for the files it applied to), and a boolean mask of the files kept. With
    ``on_error="raise"`` the first bad file raises a :class:`DataError` naming it; with ``"skip"`` bad
    files are left out with one warning naming them.

    Raises:
        DataError: a bad file with ``on_error="raise"``; with ``"skip"``, every file bad (the count, the
            first files and their reasons).
    """
    policy = as_intensity(intensity)
    from tqdm.auto import tqdm

    out = np.empty((len(paths), size, size, 3), dtype=np.uint8)
    digests: list[str] = [""] * len(paths)
    keep = np.ones(len(paths), dtype=bool)
    errors: list[tuple[int, str]] = []
    workers = max(1, min(8, os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:
        results = pool.map(lambda p: _read_and_decode(p, size, policy), paths)
        for i, (array, digest, error) in enumerate(
            tqdm(results, total=len(paths), desc="decode images", unit="img", disable=not progress, leave=False)
        ):
            stopping.check()
            digests[i] = digest
            if error is not None:
                if on_error == "raise":
                    raise DataError(f"{error}. {_ADVICE}")
                errors.append((i, error))
                keep[i] = False
                continue
            out[i] = array
    if errors:
        shown = "; ".join(e for _, e in errors[:3]) + (f"; and {len(errors) - 3} more" if len(errors) > 3 else "")
        if not keep.any():
            raise DataError(
                f"None of the {len(paths)} image files could be decoded (data.on_error='skip' leaves bad files "
                f"out, but that leaves none). The first: {shown}. Check that the paths point at the images "
                "(data.root, the table's image column) and that the files are images or DICOM files."
            )
        warnings.warn(
            f"Skipping {len(errors)} of {len(paths)} image files that cannot be decoded: {shown}", stacklevel=2
        )
    return out[keep], [d for d, k in zip(digests, keep, strict=True) if k], keep
