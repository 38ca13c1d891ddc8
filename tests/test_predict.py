"""`reproai predict`'s inputs: files, folders (hidden files skipped), tables; and model references."""

from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient
from PIL import Image

from reproai.errors import DataError, TrackingError
from reproai.export._predict import list_inputs, resolve_model


def test_files_folders_and_tables(tmp_path):
    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True)
    (folder / ".ipynb_checkpoints").mkdir()
    for name in ("b.png", "a.jpg", "sub/c.gif", ".ipynb_checkpoints/a-checkpoint.jpg", "._a.jpg"):
        Image.new("RGB", (4, 4)).save(folder / name, format="PNG")
    (folder / "notes.txt").write_text("not an image")
    single = tmp_path / "one.png"
    Image.new("RGB", (4, 4)).save(single)
    table = tmp_path / "list.csv"
    pd.DataFrame({"file": ["images/a.jpg", str(single)]}).to_csv(table, index=False)
    found = list_inputs([str(folder), str(single), str(table)], image_column="file")
    assert [i for i, _ in found] == [
        f"{folder}/a.jpg",
        f"{folder}/b.png",
        f"{folder}/sub/c.gif",
        str(single),
        "images/a.jpg",
        str(single),
    ]
    assert found[4][1] == folder / "a.jpg"  # a table's relative paths resolve against its folder
    with pytest.raises(DataError, match=r"has no column 'path'.*--image-column"):
        list_inputs([str(table)])
    assert list_inputs(["nowhere.png"]) == [("nowhere.png", Path("nowhere.png"))]  # a file that cannot be read
    elsewhere = list_inputs([str(table)], image_column="file", root=tmp_path / "copy")
    assert elsewhere[0] == ("images/a.jpg", tmp_path / "copy" / "images" / "a.jpg")  # --root


def test_model_references_pass_through_or_need_a_final_model(tmp_path):
    assert resolve_model("models:/name@final") == "models:/name@final"
    assert resolve_model("runs:/abc/model") == "runs:/abc/model"
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    with pytest.raises(TrackingError, match=rf"No MLflow tracking store at {uri}: .*m.db does not exist"):
        resolve_model("no-such-study", uri)
    assert not (tmp_path / "m.db").exists()  # a command that only reads makes no empty store
    MlflowClient(uri).search_experiments()  # now there is one
    with pytest.raises(TrackingError, match=r"neither an experiment name nor a run id"):
        resolve_model("no-such-study", uri)
