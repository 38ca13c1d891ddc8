"""Table manifests: CSV, TSV, Parquet or a DataFrame; ids, classes and groups; one clear error each for a
bad table, naming the table and the column or rows."""

import re

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from reproai import Data
from reproai.data import list_source, load_images
from reproai.errors import DataError


@pytest.fixture
def images(tmp_path):
    """Eight small PNGs in a folder next to where the tables go."""
    folder = tmp_path / "img"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        Image.fromarray(rng.integers(0, 255, (10, 12, 3), dtype=np.uint8)).save(folder / f"x{i}.png")
    return folder


def frame(n=8, **columns):
    base = {
        "path": [f"img/x{i}.png" for i in range(n)],
        "label": ["dog", "cat"] * (n // 2),
        "subject": [f"s{i // 2}" for i in range(n)],
    }
    return pd.DataFrame({**base, **columns})


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet"])
def test_reads_a_table_by_its_extension(tmp_path, images, suffix):
    path = tmp_path / f"labels{suffix}"
    df = frame()
    if suffix == ".parquet":
        df.to_parquet(path)
    else:
        df.to_csv(path, sep="\t" if suffix == ".tsv" else ",", index=False)
    source = list_source(Data.table(str(path), group="subject"))
    assert source.ids == df["path"].tolist()  # the path as written is the id
    assert source.classes == ["cat", "dog"] and source.labels.tolist() == [1, 0] * 4
    assert source.groups == df["subject"].tolist()
    assert source.paths[0] == images / "x0.png"


def test_a_dataframe_and_integer_labels_sorted_as_numbers(tmp_path, images, monkeypatch):
    monkeypatch.chdir(tmp_path)
    df = frame(label=[10, 2] * 4)
    source = list_source(Data.table(df))
    assert source.classes == ["2", "10"] and source.labels.tolist() == [1, 0] * 4
    csv = tmp_path / "t.csv"
    df.to_csv(csv, index=False)
    assert list_source(Data.table(str(csv))).classes == ["2", "10"]


def test_groups_enter_the_fingerprint(tmp_path, images):
    csv = tmp_path / "t.csv"
    frame().to_csv(csv, index=False)
    plain = load_images(list_source(Data.table(str(csv))), 8, progress=False, cache=False)
    grouped = load_images(list_source(Data.table(str(csv), group="subject")), 8, progress=False, cache=False)
    frame(subject=[f"s{i // 4}" for i in range(8)]).to_csv(csv, index=False)
    regrouped = load_images(list_source(Data.table(str(csv), group="subject")), 8, progress=False, cache=False)
    assert len({plain.fingerprint, grouped.fingerprint, regrouped.fingerprint}) == 3
    assert grouped.groups.tolist() == [f"s{i // 2}" for i in range(8)]


def test_relative_paths_resolve_against_root(tmp_path, images):
    csv = tmp_path / "tables" / "t.csv"
    csv.parent.mkdir()
    frame(path=[f"x{i}.png" for i in range(8)]).to_csv(csv, index=False)
    assert list_source(Data.table(str(csv), root=str(images))).paths[3] == images / "x3.png"


@pytest.mark.parametrize(
    "change, match",
    [
        (
            lambda df: df.rename(columns={"label": "y"}),
            r"the table '.*t\.csv' has no column 'label' \(data\.label\); its columns are \['path', 'y', 'subject'\]",
        ),
        (
            lambda df: df.assign(path=[*df["path"][:6], "img/missing.png", "img/gone.png"]),
            r"the table '.*t\.csv': 2 of 8 image files do not exist, e.g. 'img/missing\.png', 'img/gone\.png' "
            r"\(at lines 8, 9\)",
        ),
        (
            lambda df: df.assign(label=["dog", "", *df["label"][2:]]),
            r"the table '.*t\.csv': 1 empty label\(s\) in column 'label', at line 3\.",
        ),
        (lambda df: pd.concat([df, df.iloc[[2]]]), r"the table '.*t\.csv': 1 duplicate row\(s\), at line 10;"),
        (
            lambda df: df.assign(path=[*df["path"][:7], "img/x0.png"]),
            r"the table '.*t\.csv': 1 path\(s\) listed twice in column 'path', e.g. 'img/x0\.png' at lines 2, 9",
        ),
        (
            lambda df: df.assign(label=["dog"] * 8),
            r"the table '.*t\.csv': every image has the label 'dog' \(column 'label'\); a classifier needs",
        ),
        (
            lambda df: df.assign(subject=["s1", None, *df["subject"][2:]]),
            r"the table '.*t\.csv': 1 empty group\(s\) in column 'subject', at line 3",
        ),
    ],
)
def test_each_bad_table_gets_one_clear_error(tmp_path, images, change, match):
    csv = tmp_path / "t.csv"
    change(frame()).to_csv(csv, index=False)
    with pytest.raises(DataError, match=match):
        list_source(Data.table(str(csv), group="subject"))


def test_a_missing_table_and_an_unknown_extension(tmp_path):
    with pytest.raises(DataError, match=r"the table 'nope\.csv' does not exist"):
        list_source(Data.table("nope.csv"))
    (tmp_path / "t.xlsx").write_text("x")
    with pytest.raises(DataError, match=re.escape("unknown extension '.xlsx'")):
        list_source(Data.table(str(tmp_path / "t.xlsx")))


def test_hidden_paths_in_a_table_are_left_out(tmp_path, images):
    (images / ".ipynb_checkpoints").mkdir()
    Image.new("RGB", (4, 4)).save(images / ".ipynb_checkpoints" / "x0-checkpoint.png")
    df = pd.concat(
        [
            frame(),
            pd.DataFrame({"path": ["img/.ipynb_checkpoints/x0-checkpoint.png"], "label": ["cat"], "subject": ["s9"]}),
        ]
    )
    csv = tmp_path / "t.csv"
    df.to_csv(csv, index=False)
    with pytest.warns(UserWarning, match=r"left out 1 row\(s\) whose path is in a hidden folder"):
        source = list_source(Data.table(str(csv)))
    assert len(source.ids) == 8


def test_too_few_groups_for_the_folds_names_the_classes(tmp_path, images):
    from reproai import CrossValidation, Experiment
    from reproai.nested._study import prepare_splits

    path = tmp_path / "t.csv"
    frame(subject=["d0", "c0", "d1", "c1"] * 2).to_csv(path, index=False)  # two subjects per class
    experiment = Experiment(
        name="x", data=Data.table(str(path), group="subject"), cv=CrossValidation(outer_folds=3, inner_folds=2)
    )
    data = load_images(list_source(experiment.data), 8, progress=False, cache=False)
    with pytest.raises(DataError, match=r"class\(es\) \[0, 1\] have only 2, 2 group.*\(Classes: 0 = cat, 1 = dog\.\)"):
        prepare_splits(experiment, data)
