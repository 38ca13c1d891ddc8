"""DICOM files decode to what a viewer displays: the Modality LUT, the file's window (or the configured
policy), MONOCHROME1 inverted, RGB as RGB, compressed pixel data as its uncompressed twin. Each expected
image is computed here, by hand, from the DICOM standard's formulas (PS3.3 C.11.1, C.11.2.1.2)."""

import io
import warnings

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    RLELossless,
    SecondaryCaptureImageStorage,
    generate_uid,
)

from reproai import Data, Intensity
from reproai.data import decode_files, decode_image, list_source, load_images
from reproai.errors import DataError

SIZE = 32


def dicom_bytes(
    pixels: np.ndarray,
    *,
    photometric: str = "MONOCHROME2",
    bits: int = 16,
    intercept: float | None = None,
    slope: float = 1.0,
    center=None,
    width=None,
    syntax: str | None = None,
    patient: str = "P1",
    frames: int = 1,
) -> bytes:
    """A DICOM file (Part 10) of ``pixels``, written by pydicom."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.PatientID, ds.Modality = patient, "CT"
    ds.set_pixel_data(np.stack([pixels] * frames) if frames > 1 else pixels, photometric, bits)
    if intercept is not None:
        ds.RescaleIntercept, ds.RescaleSlope = intercept, slope
    if center is not None:
        ds.WindowCenter, ds.WindowWidth = center, width
    if syntax is not None:
        ds.compress(syntax)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def stored_values(seed: int = 0, low: int = 0, high: int = 4096, size: int = SIZE) -> np.ndarray:
    return np.random.default_rng(seed).integers(low, high, (size, size)).astype(np.uint16)


class Levels(np.ndarray):
    """Exact grey levels (floats on 0-255) that compare equal to a decoded image when each pixel is the
    level rounded, either way for a level half-way between two integers (a tie, where the last bit of
    float arithmetic decides)."""

    def __eq__(self, decoded):
        exact = np.asarray(self)
        tie = np.abs(exact - np.floor(exact) - 0.5) < 1e-6
        ok = np.where(tie, np.abs(decoded - exact) <= 0.5 + 1e-6, decoded == np.rint(exact))
        return ok

    def __rsub__(self, other):
        return (other - np.asarray(self)).view(Levels)


def levels(y: np.ndarray) -> Levels:
    return np.asarray(y * 255.0, dtype=np.float64).view(Levels)


def linear_window(x: np.ndarray, center: float, width: float) -> Levels:
    """DICOM's LINEAR VOI function (PS3.3 C.11.2.1.2.1) onto 0-255, by hand."""
    y = np.where(
        x <= center - 0.5 - (width - 1) / 2,
        0.0,
        np.where(x > center - 0.5 + (width - 1) / 2, 1.0, ((x - (center - 0.5)) / (width - 1) + 0.5)),
    )
    return levels(y)


def grey(decoded: np.ndarray) -> np.ndarray:
    assert decoded.shape[2] == 3 and decoded.dtype == np.uint8
    assert (decoded[..., 0] == decoded[..., 1]).all() and (decoded[..., 1] == decoded[..., 2]).all()
    return decoded[..., 0]


# 32 px: fewer pixels than stored levels, decoded pixel by pixel; 128 px: through a table of the levels.
SIZES = pytest.mark.parametrize("size", [SIZE, 128], ids=["per-pixel", "level-table"])


@SIZES
@pytest.mark.parametrize("intercept", [-1024.0, 0.0, 500.0])
def test_monochrome2_goes_through_the_rescale_then_the_files_window(intercept, size):
    stored = stored_values(size=size)
    data = dicom_bytes(stored, intercept=intercept, slope=0.5, center=600.0, width=800.0)
    hounsfield = stored.astype(np.float64) * 0.5 + intercept  # the Modality LUT
    assert (grey(decode_image(data, size)) == linear_window(hounsfield, 600.0, 800.0)).all()


@SIZES
def test_monochrome1_is_shown_inverted(size):
    stored = stored_values(1, size=size)
    m2 = dicom_bytes(stored, intercept=-1024.0, center=500.0, width=1000.0)
    m1 = dicom_bytes(stored, photometric="MONOCHROME1", intercept=-1024.0, center=500.0, width=1000.0)
    expected = linear_window(stored + -1024.0, 500.0, 1000.0)
    assert (grey(decode_image(m2, size)) == expected).all()
    assert (grey(decode_image(m1, size)) == 255 - expected).all()


def test_the_first_of_several_windows_is_used():
    stored = stored_values(2)
    data = dicom_bytes(stored, intercept=0.0, center=[2000.0, 300.0], width=[1000.0, 200.0])
    assert (grey(decode_image(data, SIZE)) == linear_window(stored.astype(np.float64), 2000.0, 1000.0)).all()


@pytest.mark.parametrize("size", [SIZE, 300], ids=["per-pixel", "level-table"])
def test_without_a_window_the_percentile_window_applies_and_a_hot_pixel_does_not_set_the_scale(size):
    stored = stored_values(3, 1000, 1200, size=size)
    stored[0, :3] = 65535  # hot pixels
    data = dicom_bytes(stored)
    low, high = np.percentile(stored.astype(np.float64), [0.5, 99.5])
    expected = levels(np.clip((stored - low) / (high - low), 0, 1))
    assert (grey(decode_image(data, size)) == expected).all()
    assert np.median(np.asarray(expected)) > 100  # the signal spans the grey levels


@SIZES
def test_a_fixed_window_in_hounsfield_units_overrides_the_files(size):
    stored = stored_values(4, size=size)
    data = dicom_bytes(stored, intercept=-1024.0, center=2000.0, width=100.0)
    decoded = grey(decode_image(data, size, intensity=Intensity.window(low=-160, high=240)))
    hounsfield = stored + -1024.0
    expected = levels(np.clip((hounsfield + 160) / 400, 0, 1))
    assert (decoded == expected).all()


def test_rgb_dicom_is_rgb():
    rgb = np.random.default_rng(5).integers(0, 256, (SIZE, SIZE, 3)).astype(np.uint8)
    data = dicom_bytes(rgb, photometric="RGB", bits=8)
    assert (decode_image(data, SIZE) == rgb).all()


@pytest.mark.parametrize("syntax", [RLELossless, JPEG2000Lossless], ids=["rle", "jpeg2000"])
def test_a_compressed_file_decodes_to_its_uncompressed_twins_pixels(syntax):
    stored = stored_values(6)
    plain = dicom_bytes(stored, intercept=-1024.0, center=1000.0, width=1500.0)
    compressed = dicom_bytes(stored, intercept=-1024.0, center=1000.0, width=1500.0, syntax=syntax)
    assert compressed != plain
    assert (decode_image(compressed, SIZE) == decode_image(plain, SIZE)).all()


def test_a_multi_frame_file_is_refused_with_the_reason():
    data = dicom_bytes(stored_values(7), frames=3)
    with pytest.raises(DataError, match=r"DICOM file vol\.dcm holds 3 frames .* one frame per file"):
        decode_image(data, SIZE, name="vol.dcm")


def test_dicom_is_recognised_by_content_in_folders_tables_and_any_name(tmp_path):
    stored = stored_values(8)
    for k, name in enumerate(["a/IM000001", "a/scan.png", "b/x.dcm", "b/y.DCM"]):
        path = tmp_path / "folder" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(dicom_bytes(stored + k, intercept=0.0, center=2000.0, width=4000.0))
    (tmp_path / "folder" / "a" / "notes").write_text("not an image, no extension")
    source = list_source(Data.image_folder(str(tmp_path / "folder")))
    assert sorted(source.ids) == ["a/IM000001", "a/scan.png", "b/x.dcm", "b/y.DCM"]
    images = load_images(source, SIZE, progress=False, cache=False).images
    assert (images[0, ..., 0] == linear_window(stored.astype(np.float64), 2000.0, 4000.0)).all()


def test_groups_from_a_dicom_attribute(tmp_path):
    for n in range(6):
        (tmp_path / f"{n}.dcm").write_bytes(dicom_bytes(stored_values(n), patient=f"patient-{n // 2}"))
    (tmp_path / "t.csv").write_text("path,label\n" + "".join(f"{n}.dcm,{'ab'[n % 2]}\n" for n in range(6)))
    source = list_source(Data.table(str(tmp_path / "t.csv"), group="dicom:PatientID"))
    assert source.groups == [f"patient-{n // 2}" for n in range(6)]
    with pytest.raises(DataError, match=r"'PatientNames' is not a DICOM keyword; did you mean 'PatientName'\?"):
        list_source(Data.table(str(tmp_path / "t.csv"), group="dicom:PatientNames"))
    from PIL import Image

    Image.new("L", (4, 4)).save(tmp_path / "not.png")
    (tmp_path / "t2.csv").write_text(
        "path,label\n" + "".join(f"{n}.dcm,{'ab'[n % 2]}\n" for n in range(6)) + "not.png,b\n"
    )
    with pytest.raises(DataError, match=r"1 of 7 file\(s\) give no group: .*not\.png is not a DICOM file .*skip"):
        list_source(Data.table(str(tmp_path / "t2.csv"), group="dicom:PatientID"))
    with pytest.warns(UserWarning, match=r"1 of 7 file\(s\) give no group: .*not\.png.*left out"):
        skipped = list_source(Data.table(str(tmp_path / "t2.csv"), group="dicom:PatientID", on_error="skip"))
    assert skipped.ids == [f"{n}.dcm" for n in range(6)] and skipped.groups == source.groups


def test_every_file_failing_under_skip_is_one_data_error(tmp_path):
    paths = []
    for n in range(7):
        path = tmp_path / f"normal_{n:03d}.dcm"
        path.write_bytes(dicom_bytes(stored_values(n), frames=2))  # refused: several frames
        paths.append(path)
    with pytest.raises(DataError, match=r"None of the 7 image files could be decoded .* The first: .*normal_000\.dcm"):
        decode_files(paths, SIZE, on_error="skip", progress=False)
    (tmp_path / "text.dcm").write_text("not an image")
    with pytest.raises(DataError, match=r"text\.dcm: UnidentifiedImageError.*\(nor is it a DICOM file: no 'DICM'"):
        decode_files([tmp_path / "text.dcm"], SIZE, on_error="skip", progress=False)
    ok = tmp_path / "ok.dcm"
    ok.write_bytes(dicom_bytes(stored_values(9)))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        images, _, keep = decode_files([*paths[:2], tmp_path / "missing.png", ok], SIZE, on_error="skip")
    assert keep.tolist() == [False, False, False, True] and images.shape == (1, SIZE, SIZE, 3)
    skipped = [str(w.message) for w in seen if "Skipping" in str(w.message)]
    assert len(skipped) == 1 and skipped[0].startswith("Skipping 3 of 4 image files that cannot be decoded: ")
    assert str(paths[0]) in skipped[0] and "missing.png" in skipped[0]


def test_reproai_run_on_files_that_all_fail_under_skip_says_so_without_a_traceback(tmp_path, capsys):
    """The reported case: DICOM files a decoder cannot use (here: volumes), in a table, with
    on_error='skip': one error with the count and the first files, exit status 2, no traceback."""
    from reproai.cli import main

    rows = []
    for n in range(6):
        (tmp_path / f"normal_{n:03d}.dcm").write_bytes(dicom_bytes(stored_values(n), frames=2))
        rows.append(f"normal_{n:03d}.dcm,{'ab'[n % 2]}")
    (tmp_path / "t.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    (tmp_path / "config.py").write_text(
        "from reproai import Data, Experiment, Model\n"
        f"experiment = Experiment(name='all-bad', data=Data.table({str(tmp_path / 't.csv')!r}, on_error='skip'),\n"
        "                        model=Model(backbone='small_cnn', pretrained=False))\n"
    )
    assert main(["run", "config.py", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "None of the 6 image files could be decoded" in err and "normal_000.dcm holds 2 frames" in err
    assert "Traceback" not in err and "or set data.on_error='skip'" not in err  # it is set already
