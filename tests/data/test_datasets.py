import numpy as np
import pytest

from reproai import Data
from reproai.data import list_source, load_images
from reproai.errors import DataError
from tests.conftest import PETS_ROOT, make_image_folder, needs_shared


def test_image_folder_lists_classes_and_ignores_non_images(tmp_path):
    root = make_image_folder(tmp_path / "imgs", n_per_class=3)
    (root / "cat" / "notes.txt").write_text("not an image")
    (root / "dog" / "mask.mat").write_bytes(b"MATLAB")
    source = list_source(Data.image_folder(str(root)))
    assert source.classes == ["cat", "dog"]
    assert len(source.ids) == 6 and all(i.endswith(".png") for i in source.ids)
    data = load_images(source, 16, progress=False)
    assert data.images.shape == (6, 16, 16, 3) and data.labels.tolist() == [0, 0, 0, 1, 1, 1]


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match=r"data\.root=.*nowhere.* is not a folder"):
        list_source(Data.image_folder(str(tmp_path / "nowhere")))


def test_digits_and_a_stratified_limit():
    full = list_source(Data.digits())
    assert len(full.ids) == 1797 and full.classes == [str(i) for i in range(10)]
    small = list_source(Data.digits(limit=100), seed=1)
    assert len(small.ids) == 100 and set(small.labels.tolist()) == set(range(10))
    data = load_images(small, 8, progress=False)
    assert data.images.shape == (100, 8, 8, 3)


def test_fingerprint_changes_with_the_files(tmp_path):
    root = make_image_folder(tmp_path / "imgs", n_per_class=3)
    first = load_images(list_source(Data.image_folder(str(root))), 8, progress=False).fingerprint
    assert first == load_images(list_source(Data.image_folder(str(root))), 8, progress=False).fingerprint
    make_image_folder(root, n_per_class=1, seed=1)  # dog_0.png and cat_0.png replaced by other images
    assert first != load_images(list_source(Data.image_folder(str(root))), 8, progress=False).fingerprint


def test_identical_files_are_dropped_or_refused_by_policy(tmp_path):
    root = make_image_folder(tmp_path / "imgs", n_per_class=4)
    (root / "cat" / "copy_of_cat_0.png").write_bytes((root / "cat" / "cat_0.png").read_bytes())  # same label
    (root / "dog" / "cat_1_as_dog.png").write_bytes((root / "cat" / "cat_1.png").read_bytes())  # labels disagree
    with pytest.warns(UserWarning, match=r"left out 3 file\(s\) of 2 group\(s\) of identical files"):
        source = list_source(Data.image_folder(str(root)))
    assert sorted(source.ids) == ["cat/cat_0.png", "cat/cat_2.png", "cat/cat_3.png"] + [
        f"dog/dog_{i}.png" for i in range(4)
    ]
    with pytest.raises(
        DataError,
        match=r"2 group\(s\) of identical files .*cat/cat_0\.png \(cat\) = "
        r"cat/copy_of_cat_0\.png \(cat\).*data\.duplicates='drop'",
    ):
        list_source(Data.image_folder(str(root), duplicates="error"))
    assert len(list_source(Data.image_folder(str(root), duplicates="keep")).ids) == 10


@needs_shared()
def test_oxford_pets_real_sample_species_and_breed():
    # 400 images (200 cats, 200 dogs), 2 of them without an annotation line; the .mat files are not images.
    with pytest.warns(UserWarning, match=r"2 image\(s\) .* labelled from their file names"):
        source = list_source(Data.oxford_pets(root=str(PETS_ROOT), download=False))
    assert len(source.ids) == 400 and source.classes == ["cat", "dog"]
    assert np.bincount(source.labels).tolist() == [200, 200]
    labels = dict(zip(source.ids, source.labels.tolist(), strict=True))
    assert (
        labels["Abyssinian_34.jpg"] == 0 and labels["Abyssinian_5.jpg"] == 0 and labels["american_bulldog_10.jpg"] == 1
    )
    assert not any(i.endswith(".mat") for i in source.ids)
    with pytest.warns(UserWarning, match=r"left out"):
        skipped = list_source(Data.oxford_pets(root=str(PETS_ROOT), download=False, unannotated="skip"))
    assert len(skipped.ids) == 398 and "Abyssinian_34.jpg" not in skipped.ids
    with pytest.warns(UserWarning):
        breed = list_source(Data.oxford_pets(root=str(PETS_ROOT), target="breed", download=False))
    assert breed.classes == ["Abyssinian", "American Bulldog"] and len(breed.ids) == 400


def test_oxford_pets_missing_root_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match=r"Oxford-IIIT Pet not found under data\.root="):
        list_source(Data.oxford_pets(root=str(tmp_path), download=False))


def test_hidden_files_and_folders_are_never_classes_or_examples(tmp_path):
    """What Jupyter, macOS, Windows and Synology leave in a data folder."""
    from PIL import Image

    root = make_image_folder(tmp_path / "images", n_per_class=3)
    (root / ".ipynb_checkpoints").mkdir()
    Image.new("RGB", (8, 8)).save(root / ".ipynb_checkpoints" / "cat_0-checkpoint.png")
    for junk in (
        root / ".DS_Store",
        root / "cat" / ".DS_Store",
        root / "dog" / "Thumbs.db",
        root / "cat" / "._cat_0.png",
    ):
        junk.write_bytes(b"\x00\x01")
    for folder in ("__MACOSX", "@eaDir"):
        (root / folder).mkdir()
        Image.new("RGB", (8, 8)).save(root / folder / "x.png")
    (root / "cat" / ".hidden").mkdir()
    Image.new("RGB", (8, 8)).save(root / "cat" / ".hidden" / "y.png")
    source = list_source(Data.image_folder(str(root)))
    assert source.classes == ["cat", "dog"]
    assert sorted(source.ids) == sorted([f"cat/cat_{i}.png" for i in range(3)] + [f"dog/dog_{i}.png" for i in range(3)])


def test_groups_from_file_names(tmp_path):
    from PIL import Image

    root = tmp_path / "images"
    for c, patients in (("benign", ("p1", "p2")), ("malignant", ("p3",))):
        (root / c).mkdir(parents=True)
        for p in patients:
            for k in range(2):
                Image.new("RGB", (8, 8), (int(p[1:]), k, 0)).save(root / c / f"{p}_lesion{k}.png")
    source = list_source(Data.image_folder(str(root), group_pattern=r"^(p\d+)_"))
    assert source.groups == ["p1", "p1", "p2", "p2", "p3", "p3"]
    with pytest.raises(DataError, match=r"data\.group_pattern='\^\(q\\\\d\+\)_' does not match the file name 'p1_"):
        list_source(Data.image_folder(str(root), group_pattern=r"^(q\d+)_"))
    with pytest.raises(DataError, match=r"has no capture group"):
        list_source(Data.image_folder(str(root), group_pattern=r"^p\d+_"))
