"""Decode image files robustly into fixed-size RGB uint8 arrays.

The Oxford-IIIT Pet dataset, like many scraped datasets, holds files whose name lies about their
format (a GIF or a PNG named ``.jpg``), palette and alpha images, grayscale and CMYK JPEGs. Pillow
reads by content, not by name, so all of them decode; transparency is composited on white.
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

from reproai.errors import DataError
from reproai.runtime import _stopping as stopping

__all__ = ["decode_image", "decode_files", "decoder_error", "to_rgb"]


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode (P, PA, LA, RGBA, L, I;16, CMYK, ...) to RGB."""
    if image.mode in ("P", "PA"):
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "La", "RGBa"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode.startswith("I"):
        # 16/32-bit grayscale: scale to 8 bits rather than clip.
        a = np.asarray(image, dtype=np.float64)
        hi = a.max() or 1.0
        image = Image.fromarray((a * (255.0 / hi)).clip(0, 255).astype(np.uint8), mode="L")
    return image.convert("RGB")


def decoder_error(e: BaseException) -> str:
    """A decoder's exception in words, without the in-memory file object Pillow names in its message."""
    return f"{type(e).__name__}: " + re.sub(r"\s*<_io\.BytesIO object at 0x[0-9a-fA-F]+>", "", str(e))


def decode_image(data: bytes, size: int, *, name: str = "<bytes>") -> np.ndarray:
    """Decode image bytes to a ``(size, size, 3)`` uint8 array: resize the short side, centre-crop."""
    try:
        with Image.open(io.BytesIO(data)) as file:
            file.seek(0)  # the first frame of an animated GIF
            image = ImageOps.exif_transpose(file) if hasattr(file, "getexif") else file
            rgb = to_rgb(image)
    except Exception as e:  # noqa: BLE001 - any decoder failure (a decompression bomb, a truncated file, ...)
        raise DataError(
            f"Cannot decode image {name}: {decoder_error(e)}. Remove or replace the file, or set "
            "data.on_error='skip' to leave undecodable files out with a warning."
        ) from e
    if rgb.size != (size, size):
        rgb = ImageOps.fit(rgb, (size, size), method=Image.Resampling.BILINEAR)
    return np.asarray(rgb, dtype=np.uint8)


def _read_and_decode(path: Path, size: int) -> tuple[np.ndarray | None, str, str | None]:
    try:
        data = path.read_bytes()
    except OSError as e:
        return None, "", f"Cannot read image file {path}: {e}."
    digest = hashlib.sha256(data).hexdigest()
    try:
        return decode_image(data, size, name=str(path)), digest, None
    except DataError as e:
        return None, digest, str(e)


def decode_files(
    paths: Sequence[Path], size: int, *, on_error: str = "raise", progress: bool = True
) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Decode files in parallel threads (Pillow releases the GIL while decoding).

    Returns the images ``(n_ok, size, size, 3)``, the sha256 of each file's bytes, and a boolean
    mask of the files kept. With ``on_error="raise"`` the first bad file raises a :class:`DataError`
    naming it; with ``"skip"`` bad files are left out with a warning.
    """
    from tqdm.auto import tqdm

    out = np.empty((len(paths), size, size, 3), dtype=np.uint8)
    digests: list[str] = [""] * len(paths)
    keep = np.ones(len(paths), dtype=bool)
    workers = max(1, min(8, os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:
        results = pool.map(lambda p: _read_and_decode(p, size), paths)
        for i, (array, digest, error) in enumerate(
            tqdm(results, total=len(paths), desc="decode images", unit="img", disable=not progress, leave=False)
        ):
            stopping.check()
            digests[i] = digest
            if error is not None:
                if on_error == "raise":
                    raise DataError(error)
                warnings.warn(f"Skipping {paths[i]}: {error}", stacklevel=2)
                keep[i] = False
                continue
            out[i] = array
    return out[keep], [d for d, k in zip(digests, keep, strict=True) if k], keep
