"""DICOM files, read with pydicom: recognised by content (the ``DICM`` marker after the 128-byte
preamble), not by name; decoded to the image a viewer displays.

Grayscale images go through the Modality LUT (rescale slope and intercept: Hounsfield units in CT), then
the intensity policy (by default the file's own VOI LUT or first window, applied by pydicom), and
MONOCHROME1 images are inverted; colour images (RGB, YBR, palette) come out as RGB. Compressed pixel data
(JPEG, JPEG-LS, JPEG 2000, RLE) is decoded by pydicom's pixel-data plugins. Reference: DICOM PS3.3
C.11.1 (Modality LUT), C.11.2 (VOI LUT), C.7.6.3.1.2 (Photometric Interpretation).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from reproai.config._schema import Intensity
from reproai.data._intensity import apply_intensity, to_grey
from reproai.errors import DataError

if TYPE_CHECKING:
    from pydicom import Dataset

__all__ = ["is_dicom", "is_dicom_file", "read_dicom", "dicom_groups", "DICOM_PREFIX"]

# data.group="dicom:PatientID": each image's group is that attribute of its file.
DICOM_PREFIX = "dicom:"
_MARKER_AT = 128


def is_dicom(head: bytes) -> bool:
    """Whether bytes start as a DICOM file (Part 10): a 128-byte preamble, then ``DICM``."""
    return head[_MARKER_AT : _MARKER_AT + 4] == b"DICM"


def is_dicom_file(path: Path) -> bool:
    """Whether the file at ``path`` is a DICOM file; False for one that cannot be read."""
    try:
        with open(path, "rb") as f:
            return is_dicom(f.read(_MARKER_AT + 4))
    except OSError:
        return False


def _file_window(values: np.ndarray, ds: Dataset) -> np.ndarray | None:
    """The file's own VOI transform (its VOI LUT, else its first Window Center and Width, as pydicom
    applies them), as grey levels 0-255; None when the file has neither."""
    from pydicom.pixels import apply_voi_lut

    voi = ds.get("VOILUTSequence")
    has_lut = bool(voi) and voi[0].get("LUTDescriptor") is not None and voi[0].get("LUTData") is not None
    has_window = ds.get("WindowCenter") is not None and ds.get("WindowWidth") is not None
    if not (has_lut or has_window):
        return None
    if has_lut:
        return to_grey(apply_voi_lut(values, ds, index=0), 0.0, float(2 ** int(voi[0].LUTDescriptor[2]) - 1))
    # pydicom maps a window onto the range of the stored values; the ends of that range are what it maps
    # -inf and +inf to (appended to the values, to window them in one call), which grey levels 0 and 255 mean.
    flat = np.concatenate([np.ravel(values).astype(np.float64), [-np.inf, np.inf]])
    windowed = apply_voi_lut(flat, ds, index=0)
    return to_grey(windowed[:-2].reshape(np.shape(values)), float(windowed[-2]), float(windowed[-1]))


def _grey(
    stored: np.ndarray,
    ds: Dataset,
    intensity: Intensity,
    *,
    invert: bool,
    image: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """Grey levels of ``stored`` values: the Modality LUT, then the file's window or the policy, then the
    inversion. ``image`` gives the image's own values from those of ``stored`` (when ``stored`` is a
    table of levels), for a per-image window."""
    from pydicom.pixels import apply_modality_lut

    values = apply_modality_lut(stored, ds)
    grey = _file_window(values, ds) if intensity.kind == "auto" else None
    if grey is not None:
        return 255 - grey if invert else grey
    policy = Intensity.percentile(*intensity.percentiles) if intensity.kind == "auto" else intensity
    return apply_intensity(values, policy, invert=invert, stats=None if image is None else image(values))


def _monochrome(pixels: np.ndarray, ds: Dataset, intensity: Intensity, *, invert: bool) -> np.ndarray:
    """A grayscale image's grey levels, ``(h, w)`` uint8."""
    if np.issubdtype(pixels.dtype, np.integer) and pixels.size:
        lo, hi = int(pixels.min()), int(pixels.max())
        if hi - lo < pixels.size:
            # Every step maps a stored value to a grey level on its own (given the image's statistics), so
            # integer images go through a table of the levels present: computed once per level, in the same
            # float64 arithmetic, then looked up; the same numbers, several times faster than per pixel.
            index = pixels - pixels.dtype.type(lo) if pixels.dtype.kind == "u" else pixels.astype(np.int64) - lo
            levels = np.arange(lo, hi + 1, dtype=np.int64)
            # np.take, not table[index]: with a uint16 index it is about 3 times faster.
            table = _grey(levels, ds, intensity, invert=invert, image=lambda values: np.take(values, index))
            return np.take(table, index)
    return _grey(pixels, ds, intensity, invert=invert)


def read_dicom(data: bytes, intensity: Intensity, *, name: str = "<bytes>") -> np.ndarray:
    """Decode a DICOM file's bytes to what a viewer displays: ``(h, w)`` uint8 grey levels, or ``(h, w, 3)``
    uint8 RGB for a colour image.

    Raises:
        DataError: not a readable DICOM file, no pixel data, several frames (a volume or a cine loop), a
            transfer syntax no installed plugin decodes, or an unknown photometric interpretation.
    """
    import pydicom
    from pydicom.pixels import apply_color_lut

    try:
        ds = pydicom.dcmread(io.BytesIO(data))
    except Exception as e:  # noqa: BLE001 - pydicom raises several types for a damaged file
        raise DataError(f"Cannot read DICOM file {name}: {type(e).__name__}: {e}") from e
    if "PixelData" not in ds:
        raise DataError(
            f"DICOM file {name} has no pixel data (a {ds.get('Modality', 'non-image')} object, e.g. a report); "
            "it is not an image."
        )
    frames = int(ds.get("NumberOfFrames") or 1)
    if frames > 1:
        raise DataError(
            f"DICOM file {name} holds {frames} frames (a volume or a cine loop); reproai reads 2-D images, "
            "one frame per file. Export the frames you want as single-frame files (3-D volumes are out of scope)."
        )
    try:
        pixels = ds.pixel_array
    except Exception as e:  # noqa: BLE001 - a missing plugin or damaged pixel data
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        what = f"{syntax.name} ({syntax})" if syntax is not None else "unknown transfer syntax"
        raise DataError(
            f"Cannot decode the pixel data of DICOM file {name} ({what}): {type(e).__name__}: {e}. "
            "pydicom decodes compressed data through its plugins (pylibjpeg, pylibjpeg-libjpeg, "
            "pylibjpeg-openjpeg; reproai installs them)."
        ) from e
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if photometric in ("MONOCHROME1", "MONOCHROME2"):
        return _monochrome(pixels, ds, intensity, invert=photometric == "MONOCHROME1")
    if photometric == "PALETTE COLOR":
        pixels = apply_color_lut(pixels, ds)
    elif pixels.ndim != 3 or pixels.shape[-1] != 3:  # pydicom gives RGB for RGB and YBR data
        raise DataError(f"DICOM file {name}: photometric interpretation {photometric!r} is not supported.")
    if pixels.dtype != np.uint8:  # more than 8 bits per colour sample: scaled by the stored depth
        bits = 16 if photometric == "PALETTE COLOR" else int(ds.get("BitsStored") or 16)
        return to_grey(pixels, 0.0, float(2**bits - 1))
    return np.ascontiguousarray(pixels)


def dicom_groups(paths: Sequence[Path], keyword: str) -> tuple[list[str | None], list[str]]:
    """Each file's DICOM attribute ``keyword`` (e.g. ``PatientID``) as text, read without the pixel data
    (None for a file that gives none), and why each such file gives none.

    Raises:
        DataError: ``keyword`` is not a DICOM keyword (the message suggests the closest).
    """
    import pydicom
    from pydicom.datadict import keyword_dict, tag_for_keyword

    if tag_for_keyword(keyword) is None:
        import difflib

        close = difflib.get_close_matches(keyword, list(keyword_dict), n=1)
        raise DataError(
            f"data.group={DICOM_PREFIX + keyword!r}: {keyword!r} is not a DICOM keyword"
            + (f"; did you mean {close[0]!r}?" if close else "")
            + " Use one such as PatientID, StudyInstanceUID or InstitutionName, spelt as the standard spells it."
        )
    groups: list[str | None] = []
    problems: list[str] = []
    for path in paths:
        if not is_dicom_file(path):
            problems.append(f"{path} is not a DICOM file (no 'DICM' marker after a 128-byte preamble)")
            groups.append(None)
            continue
        try:
            value = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=[keyword]).get(keyword)
        except Exception as e:  # noqa: BLE001 - a damaged file
            problems.append(f"{path} cannot be read: {type(e).__name__}: {e}")
            groups.append(None)
            continue
        text = "" if value is None else str(value).strip()
        if not text:
            problems.append(f"{path} has no {keyword}")
        groups.append(text or None)
    return groups, problems
