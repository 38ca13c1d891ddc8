"""DICOM decoding: reproai's reader against pydicom's ``pixel_array`` alone, and the image cache built once.

Writes synthetic 12-bit radiographs (a Modality LUT and a window in each file) with pydicom, uncompressed
and in two compressed transfer syntaxes, then decodes every file, interleaved in the same loop so that
both see the same machine:

- pydicom alone: ``dcmread(bytes).pixel_array`` (the stored values, nothing applied);
- reproai's reader: the same, plus the Modality LUT, the file's window and MONOCHROME1 (what a viewer
  shows, as 8-bit grey levels);
- reproai's full decode: the reader, then resized and centre-cropped to the model's size, as RGB.

The ratio is files per second through reproai's reader over files per second through pydicom alone
(goal >= 0.9). Then the files are loaded twice through the image cache: the first load decodes them,
the second reads the cache.

    python benchmarks/dicom.py [--files 60] [--size 512] [--rounds 3]
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report  # noqa: E402


def radiograph(size: int, rng: np.random.Generator) -> np.ndarray:
    """A smooth 12-bit image with noise and a few hot pixels."""
    yy, xx = np.mgrid[:size, :size] / size
    a = 1500 + 800 * np.sin(3 * xx) * np.cos(2 * yy) + rng.normal(0, 20, (size, size))
    a = a.clip(0, 4095).astype(np.uint16)
    a.flat[rng.choice(a.size, 5, replace=False)] = 4095
    return a


def dicom_file(pixels: np.ndarray, syntax: str | None, photometric: str) -> bytes:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.PatientID, ds.Modality = "P", "DX"
    ds.set_pixel_data(pixels, photometric, 12)
    ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
    ds.WindowCenter, ds.WindowWidth = 600, 1600
    if syntax is not None:
        ds.compress(syntax)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=60)
    parser.add_argument("--size", type=int, default=512, help="image side, px")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model-size", type=int, default=224)
    args = parser.parse_args()

    import pydicom
    from pydicom.uid import JPEG2000Lossless, RLELossless

    from reproai import Intensity
    from reproai.data import cached_decode, decode_image, read_dicom

    rng = np.random.default_rng(0)
    images = [radiograph(args.size, rng) for _ in range(args.files)]
    policy = Intensity()
    figures: dict = {"benchmark": "dicom", "files": args.files, "size": args.size, "goal_ratio": 0.9, "rows": {}}
    print(f"{args.files} files of {args.size}x{args.size} 12-bit pixels, {args.rounds} rounds, interleaved")
    for label, syntax in (
        ("uncompressed", None),
        ("RLE lossless", RLELossless),
        ("JPEG 2000 lossless", JPEG2000Lossless),
    ):
        files = [dicom_file(a, syntax, ("MONOCHROME2", "MONOCHROME1")[i % 2]) for i, a in enumerate(images)]
        ways = {
            "pydicom": lambda b: pydicom.dcmread(io.BytesIO(b)).pixel_array,
            "reader": lambda b: read_dicom(b, policy),
            "decode": lambda b: decode_image(b, args.model_size, intensity=policy),
        }
        seconds = dict.fromkeys(ways, 0.0)
        for way in ways.values():  # warm-up: imports, plugin discovery
            way(files[0])
        for _ in range(args.rounds):
            for data in files:
                for name, way in ways.items():
                    start = time.perf_counter()
                    way(data)
                    seconds[name] += time.perf_counter() - start
        n = args.rounds * len(files)
        rate = {k: n / v for k, v in seconds.items()}
        row = {
            "pydicom_files_per_s": round(rate["pydicom"], 1),
            "reader_files_per_s": round(rate["reader"], 1),
            "decode_files_per_s": round(rate["decode"], 1),
            "reader_ratio": round(rate["reader"] / rate["pydicom"], 3),
            "decode_ratio": round(rate["decode"] / rate["pydicom"], 3),
            "met": rate["reader"] / rate["pydicom"] >= 0.9,
        }
        figures["rows"][label] = row
        print(
            f"{label:>20}: pydicom alone {row['pydicom_files_per_s']:7.1f} files/s | reproai's reader "
            f"{row['reader_files_per_s']:7.1f} files/s (ratio {row['reader_ratio']:.3f}, goal >= 0.9) | "
            f"full decode to {args.model_size} px RGB {row['decode_files_per_s']:7.1f} files/s "
            f"(ratio {row['decode_ratio']:.3f})"
        )

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "files"
        folder.mkdir()
        paths = []
        for i, a in enumerate(images):
            path = folder / f"{i:04d}.dcm"
            path.write_bytes(dicom_file(a, JPEG2000Lossless, "MONOCHROME2"))
            paths.append(path)
        loads = []
        for _ in range(2):
            start = time.perf_counter()
            _, _, _, reused = cached_decode(paths, args.model_size, cache_dir=Path(tmp) / "cache", progress=False)
            loads.append((time.perf_counter() - start, reused))
        built = sum(not reused for _, reused in loads)
        print(
            f"image cache (JPEG 2000 files): first load {loads[0][0]:.2f} s (decoded, reused={loads[0][1]}), "
            f"second {loads[1][0]:.3f} s (reused={loads[1][1]}): built {built} time(s)"
        )
        figures["cache"] = {"first_s": round(loads[0][0], 3), "second_s": round(loads[1][0], 4), "built": built}
    report(figures)


if __name__ == "__main__":
    main()
