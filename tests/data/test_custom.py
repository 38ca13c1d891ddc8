"""Datasets of one's own: a factory returning a Source or a map-style Dataset gives the same examples,
fingerprint and splits as the same data through a built-in kind."""

import numpy as np
import pytest
import torch
from PIL import Image

from reproai import Component, CrossValidation, Data, Experiment, Model, Phase, Training
from reproai.data import Source, image_array
from reproai.errors import DataError
from reproai.nested._study import prepare_data, prepare_splits
from tests.conftest import make_image_folder


def digits_source() -> Source:
    from sklearn.datasets import load_digits

    d = load_digits()
    gray = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)
    return Source(
        ids=[f"digit-{i:04d}" for i in range(len(gray))],
        labels=d.target.astype(np.int64),
        classes=[str(c) for c in d.target_names],
        arrays=np.repeat(gray[..., None], 3, axis=-1),
    )


class DigitsDataset(torch.utils.data.Dataset):
    """The digits as a torch Dataset of (CHW float tensor in [0, 1], label), with classes and ids."""

    def __init__(self, limit=None):
        self.source = digits_source()
        self.classes = self.source.classes
        self.ids = self.source.ids

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return torch.from_numpy(self.source.arrays[i]).permute(2, 0, 1).float() / 255.0, int(self.source.labels[i])


def splits_and_fingerprint(data: Data):
    exp = Experiment(
        name="d",
        data=data,
        model=Model(backbone="small_cnn", pretrained=False),
        training=Training(batch_size=4, phases=[Phase("train", epochs=1)]),
        cv=CrossValidation(outer_folds=3, inner_folds=2),
        seed=5,
    )
    images, _ = prepare_data(exp, progress=False)
    return prepare_splits(exp, images).to_dict(), images.fingerprint, images


@pytest.mark.parametrize("factory", [digits_source, DigitsDataset])
def test_own_source_and_dataset_match_the_built_in_kind(factory):
    builtin = splits_and_fingerprint(Data.digits(limit=300))
    own = splits_and_fingerprint(Data.from_factory(factory, limit=300))
    assert own[1] == builtin[1]  # the fingerprint
    assert own[0] == builtin[0]  # every split, outer and inner, with the same ids
    assert np.array_equal(own[2].images, builtin[2].images)


def test_a_source_of_files_matches_an_image_folder(tmp_path):
    root = make_image_folder(tmp_path / "images", n_per_class=9)

    def files(folder):
        paths = sorted(p for p in folder.rglob("*.png"))
        classes = sorted({p.parent.name for p in paths})
        return Source(
            ids=[str(p.relative_to(folder)) for p in paths],
            labels=np.array([classes.index(p.parent.name) for p in paths]),
            classes=classes,
            paths=paths,
        )

    builtin = splits_and_fingerprint(Data.image_folder(str(root)))
    own = splits_and_fingerprint(Data.from_factory(Component(files, folder=root)))
    assert own[:2] == builtin[:2]


def mixed_images():
    """A list is a map-style dataset too: images of four kinds and sizes."""
    rng = np.random.default_rng(0)
    return [
        (Image.fromarray(rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)), 0),
        (rng.integers(0, 255, (16, 16), dtype=np.uint8), 1),
        (torch.rand(3, 12, 10, generator=torch.Generator().manual_seed(0)), 0),
        (Image.fromarray(rng.integers(0, 255, (9, 9, 4), dtype=np.uint8), mode="RGBA"), 1),
    ]


def test_images_of_any_size_and_type_are_fitted_like_files():
    exp = Experiment(
        name="d",
        data=Data.from_factory(mixed_images),
        model=Model(backbone="small_cnn", pretrained=False, image_size=16),
        training=Training(batch_size=1, phases=[Phase("train", epochs=1)]),
    )
    images, _ = prepare_data(exp, progress=False)
    assert images.images.shape == (4, 16, 16, 3) and images.ids == ["0", "1", "2", "3"]
    assert images.classes == ["0", "1"]
    again, _ = prepare_data(exp, progress=False)
    assert again.fingerprint == images.fingerprint and np.array_equal(again.images, images.images)


@pytest.mark.parametrize(
    "image, match",
    [
        (np.zeros((4, 4, 3), dtype=np.float32) + 2.0, r"a float image must lie in \[0, 1\]"),
        (np.zeros((4, 4, 5), dtype=np.uint8), r"must be \(h, w\), \(h, w, c\)"),
        ("a string", r"must be a PIL image, a NumPy array or a torch tensor"),
        (np.zeros((4, 4, 3), dtype=np.int32), r"must be uint8 \(0-255\), float \(0-1\) or, with one channel"),
        (np.zeros((4, 4), dtype=np.int64), r"not int64"),
    ],
)
def test_bad_images_name_the_item(image, match):
    with pytest.raises(DataError, match=r"item 7: .*" + match):
        image_array(image, where="item 7")


def bad_labels():
    return Source(ids=["a", "b"], labels=np.array([0, 5]), classes=["x", "y"], arrays=np.zeros((2, 4, 4, 3), np.uint8))


def not_a_dataset():
    return 42


@pytest.mark.parametrize(
    "factory, match",
    [
        (bad_labels, r"data\.kind .*bad_labels\(\): labels must lie in 0\.\.1"),
        (not_a_dataset, r"data\.kind .*not_a_dataset\(\) returned a int"),
    ],
)
def test_a_bad_factory_result_is_named(factory, match):
    with pytest.raises(DataError, match=match):
        splits_and_fingerprint(Data.from_factory(factory))
