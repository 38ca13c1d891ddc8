"""Medical images: DICOM files, grouped by patient from their own PatientID attribute.

An offline example that writes its own small DICOM set on first use (pydicom writes it from NumPy) into
data/dicom-discs/ beside this file: 160 synthetic 16-bit radiographs of 80 patients (two images each),
each with a faint disc 40 units brighter ("bright") or darker ("dark") than a noisy background of about
1000 units, and 5 hot pixels at the detector's maximum. The files are stored as real sets store them:
half MONOCHROME1 (bright means low values), each with its own rescale intercept (the stored values are
shifted; the Modality LUT brings them back), a window in the file (Window Center and Width); a third
uncompressed, a third RLE- and a third JPEG 2000-compressed. Only a reader that applies all of this sees the disc the
same way in every image; reproai's does (the default ``Data.intensity``, ``Intensity()``, uses each
file's own window).

    reproai run configs/dicom_discs.py
    reproai predict dicom-discs configs/data/dicom-discs/images
"""

import csv
import os
import tempfile
from pathlib import Path

import numpy as np

from reproai import CrossValidation, Data, Experiment, Head, Model, Phase, Search, Training, hp

HERE = Path(__file__).resolve().parent
FOLDER = HERE / "data" / "dicom-discs"


def write_dicom(
    path: Path,
    stored: np.ndarray,
    *,
    patient: str,
    photometric: str = "MONOCHROME2",
    intercept: float = 0.0,
    window: tuple[float, float] | None = None,
    transfer_syntax: str | None = None,
) -> None:
    """One single-frame 16-bit DICOM file of the ``stored`` values (uint16), as a digital radiograph."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.PatientID, ds.Modality = patient, "DX"
    ds.set_pixel_data(stored, photometric, 16)
    ds.RescaleIntercept, ds.RescaleSlope = intercept, 1
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    if transfer_syntax is not None:
        ds.compress(transfer_syntax)
    ds.save_as(path, enforce_file_format=True)


def make_discs(folder: Path, *, patients: int = 80, size: int = 96, seed: int = 0) -> Path:
    """Write the set into ``folder`` (once: a complete set is kept) and return its table."""
    from pydicom.uid import JPEG2000Lossless, RLELossless

    table = folder / "images.csv"
    if table.is_file():
        return table
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".dicom-discs-", dir=folder.parent))
    (tmp / "images").mkdir()
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    rows = []
    for n in range(2 * patients):
        finding = "bright" if n % 2 == 0 else "dark"
        cy, cx = rng.uniform(size * 0.3, size * 0.7, 2)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= (size / 6) ** 2
        # What a viewer should show, in the modality's units: background ~1000, the disc +/-40.
        values = 1000 + rng.normal(0, 8, (size, size)) + np.where(disc, 40 if finding == "bright" else -40, 0)
        photometric = "MONOCHROME1" if (n // 2) % 2 else "MONOCHROME2"
        if photometric == "MONOCHROME1":  # shown inverted: low values bright
            values = 2000 - values
        intercept = float(rng.choice([-1024, 0, 200, 600]))
        stored = np.rint(values - intercept).astype(np.uint16)
        stored.flat[rng.choice(stored.size, 5, replace=False)] = 65535  # hot pixels
        syntax = [None, RLELossless, JPEG2000Lossless][n % 3]
        name = f"img{n:04d}.dcm"
        write_dicom(
            tmp / "images" / name,
            stored,
            patient=f"P{n // 2:03d}",
            photometric=photometric,
            intercept=intercept,
            window=(1000.0, 240.0),
            transfer_syntax=syntax,
        )
        rows.append({"file": f"images/{name}", "finding": finding})
    with open(tmp / "images.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["file", "finding"])
        writer.writeheader()
        writer.writerows(rows)
    try:
        os.replace(tmp, folder)  # complete, or not there: another process may have made it first
    except OSError:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return table


experiment = Experiment(
    name="dicom-discs",
    # The table has no patient column: each image's group is its file's PatientID.
    data=Data.table(str(make_discs(FOLDER)), image="file", label="finding", group="dicom:PatientID"),
    model=Model(backbone="small_cnn", pretrained=False, image_size=48, head=Head(hidden=32)),
    training=Training(
        batch_size=32,
        phases=[Phase("train", epochs=10, lr=hp.float(3e-3, 3e-2, log=True))],
    ),
    cv=CrossValidation(outer_folds=3, inner_folds=2),
    # Chosen by log loss: ROC AUC reaches 1.0 on the dev sets after an epoch, so it would pick one-epoch
    # refits; log loss keeps telling the epochs apart. The fold table reports ROC AUC as well.
    search=Search(n_trials=2, metric="log_loss"),
    seed=11,
)
