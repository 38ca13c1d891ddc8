"""The built-in kinds of data: scikit-learn's digits, an image folder, and Oxford-IIIT Pet.

Each is a function ``Data -> Source``, registered by name in the ``"dataset"`` registry
(:mod:`reproai.config._registry`).
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import numpy as np

from reproai.config._schema import Data
from reproai.data._dicom import is_dicom_file
from reproai.data._source import Source, is_hidden
from reproai.errors import DataError

__all__ = ["digits", "image_folder", "oxford_pets", "groups_from_names", "is_image_file", "IMAGE_EXTENSIONS"]


def _root(data: Data) -> Path:
    if not data.root:
        raise DataError(
            f"data.root is not set for a {data.kind!r} dataset; set it in the config or with --set data.root=PATH."
        )
    return Path(data.root).expanduser()


def _pets_folder(root: Path, download: bool) -> Path:
    """The dataset's folder under ``root``, downloaded first (by torchvision) when asked to."""
    folder = root / "oxford-iiit-pet"
    if download and not (folder / "annotations" / "test.txt").is_file():
        from torchvision.datasets import OxfordIIITPet

        OxfordIIITPet(str(root), split="trainval", download=True)
    if not (folder / "annotations" / "trainval.txt").is_file() or not (folder / "images").is_dir():
        raise DataError(
            f"Oxford-IIIT Pet not found under data.root={str(root)!r} (no {folder / 'annotations' / 'trainval.txt'} "
            "or images/). Point data.root at the folder holding oxford-iiit-pet/, or set data.download=True on a "
            "machine with internet."
        )
    return folder


def _breed_name(image_id: str) -> str:
    """A breed's class name from an image id, as torchvision names it: ``american_bulldog_12`` ->
    ``American Bulldog``."""
    return " ".join(part.title() for part in image_id.rsplit("_", 1)[0].split("_"))


def oxford_pets(data: Data) -> Source:
    """The Oxford-IIIT Pet dataset (Parkhi et al., CVPR 2012) as its own annotation files list it
    (``annotations/trainval.txt`` then ``test.txt``: ``image CLASS-ID SPECIES BREED-ID``), with
    ``data.target="species"`` (cat, dog) or ``"breed"`` (37 classes, named as torchvision names them)."""
    target = data.target or "species"
    if target not in ("species", "breed"):
        raise DataError(f"data.target={target!r} is not valid for oxford_pets; use 'species' (cat vs dog) or 'breed'.")
    folder = _pets_folder(_root(data), data.download)
    rows: list[tuple[str, int, int]] = []  # image id, breed label, species label (0-based)
    for split in ("trainval", "test"):
        lines = (folder / "annotations" / f"{split}.txt").read_text().splitlines()
        for line in lines:
            if line.strip() and not line.startswith("#"):
                image_id, breed, species, *_ = line.split()
                rows.append((image_id, int(breed) - 1, int(species) - 1))
    ids = [f"{image_id}.jpg" for image_id, _, _ in rows]
    if target == "species":
        classes = ["cat", "dog"]
        labels = [species for _, _, species in rows]
    else:  # the breeds present, in the order of their ids (all 37 in the full dataset)
        names = {breed: _breed_name(image_id) for image_id, breed, _ in rows}
        position = {breed: k for k, breed in enumerate(sorted(names))}
        classes = [names[b] for b in sorted(names)]
        labels = [position[breed] for _, breed, _ in rows]
    paths = [folder / "images" / i for i in ids]
    _add_unannotated_pets(data, folder / "images", target, classes, ids, labels, paths)
    return Source(
        ids=ids,
        labels=np.asarray(labels, dtype=np.int64),
        classes=classes,
        paths=paths,
        groups=groups_from_names(data, ids),
    )


def _add_unannotated_pets(
    data: Data, folder: Path, target: str, classes: list[str], ids: list[str], labels: list[int], paths: list[Path]
) -> None:
    """Label images that have no annotation line from their file names, or report that they are left out."""
    listed = set(ids)
    extra = sorted(p for p in folder.glob("*.jpg") if p.name not in listed and not is_hidden(p.name))
    if not extra:
        return
    if data.unannotated == "skip":
        warnings.warn(
            f"{len(extra)} image(s) in {folder} have no annotation line and are left out "
            f"(data.unannotated='skip'): {[p.name for p in extra][:5]}",
            stacklevel=3,
        )
        return
    added, unknown = [], []
    for path in extra:
        breed = path.stem.rsplit("_", 1)[0]
        if target == "species":
            label = 0 if breed[:1].isupper() else 1  # the dataset's convention: cat breeds are capitalised
        else:
            name = _breed_name(path.stem)
            if name not in classes:
                unknown.append(path.name)
                continue
            label = classes.index(name)
        ids.append(path.name)
        labels.append(label)
        paths.append(path)
        added.append(path.name)
    warnings.warn(
        f"{len(added)} image(s) in {folder} have no annotation line and were labelled from their file "
        f"names (set data.unannotated='skip' to leave them out): {added[:5]}"
        + (f"; {len(unknown)} of an unknown breed left out: {unknown[:5]}" if unknown else ""),
        stacklevel=3,
    )


IMAGE_EXTENSIONS = (
    ".jpg",
    ".jpeg",
    ".png",
    ".ppm",
    ".bmp",
    ".pgm",
    ".tif",
    ".tiff",
    ".webp",
    ".gif",
    ".dcm",
    ".dicom",
)


def is_image_file(path: Path) -> bool:
    """Whether a file in a folder is an example: an image extension, or no extension and DICOM content
    (DICOM files often have no extension, e.g. ``IM000001``)."""
    if is_hidden(path.name):
        return False
    if path.name.lower().endswith(IMAGE_EXTENSIONS):
        return True
    return "." not in path.name and is_dicom_file(path)


def image_folder(data: Data) -> Source:
    """Images in one sub-folder per class under ``data.root`` (torchvision's ``ImageFolder`` layout:
    classes sorted by name, files found recursively). Hidden files and folders (``.ipynb_checkpoints``,
    ``.DS_Store``, ``__MACOSX``, ...) are neither classes nor examples."""
    root = _root(data)
    if not root.is_dir():
        raise DataError(
            f"data.root={str(root)!r} is not a folder; an image-folder dataset needs one sub-folder per class under it."
        )
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not is_hidden(d.name))
    if not classes:
        raise DataError(
            f"data.root={str(root)!r} has no class sub-folders; put each class's images in its own sub-folder."
        )
    paths: list[Path] = []
    labels: list[int] = []
    for k, name in enumerate(classes):
        for folder, dirs, files in os.walk(root / name, followlinks=True):
            dirs[:] = sorted(d for d in dirs if not is_hidden(d))
            for file in sorted(files):
                if is_image_file(Path(folder) / file):
                    paths.append(Path(folder) / file)
                    labels.append(k)
    empty = [c for k, c in enumerate(classes) if k not in set(labels)]
    if empty:
        raise DataError(
            f"Class folder(s) {empty} under data.root={str(root)!r} hold no image files "
            f"({', '.join(IMAGE_EXTENSIONS)}, or DICOM files without an extension); add images or remove "
            "the folder(s)."
        )
    ids = [str(p.relative_to(root)) for p in paths]
    return Source(
        ids=ids,
        labels=np.asarray(labels, dtype=np.int64),
        classes=classes,
        paths=paths,
        groups=groups_from_names(data, [p.name for p in paths]),
    )


def groups_from_names(data: Data, names: list[str]) -> list[str] | None:
    """Each file's group, the first capture group of ``data.group_pattern`` in its name; None without one.

    Raises:
        DataError: the pattern is not a valid regular expression, has no capture group, or does not
            match a file (the message names it).
    """
    if data.group_pattern is None:
        return None
    try:
        pattern = re.compile(data.group_pattern)
    except re.error as e:
        raise DataError(f"data.group_pattern={data.group_pattern!r} is not a regular expression: {e}.") from e
    if pattern.groups < 1:
        raise DataError(
            f"data.group_pattern={data.group_pattern!r} has no capture group; put the group's part of "
            r"the file name in parentheses, e.g. r'^(patient\d+)_'."
        )
    groups = []
    for name in names:
        m = pattern.search(name)
        if m is None or m.group(1) is None:
            raise DataError(
                f"data.group_pattern={data.group_pattern!r} does not match the file name {name!r}; "
                "every file needs a group. Fix the pattern (it is searched in the file name, not the path)."
            )
        groups.append(m.group(1))
    return groups


def digits(data: Data) -> Source:
    """The 8x8 handwritten digits that ship with scikit-learn (1,797 images, 10 classes, offline)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    gray = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
    return Source(
        ids=[f"digit-{i:04d}" for i in range(len(gray))],
        labels=digits.target.astype(np.int64),
        classes=[str(c) for c in digits.target_names],
        arrays=np.repeat(gray[..., None], 3, axis=-1),
    )
