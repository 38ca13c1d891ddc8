"""The final model: the same procedure on all the data, logged as an MLflow model that carries its
preprocessing, registered with an alias, used by `reproai predict` and by `mlflow models serve`."""

import base64
import re
import subprocess
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from PIL import Image
from sklearn.datasets import load_digits

from reproai.cli import main
from tests.conftest import model_server, spawn_reproai, tiny_config_text

pytestmark = pytest.mark.slow

CONFIG = (
    tiny_config_text(
        name="final-test",
        data="Data.digits(limit=300)",
        epochs=2,
        cv="CrossValidation(outer_folds=2, inner_folds=2)",
        final_model=True,
    )
    + """
experiment.model.head.dropout = hp.float(0.0, 0.5)
experiment.search.n_trials = 2
experiment.search.pruner = 'none'
experiment.cv.log_refits = True
"""
)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """One study with its final model (and each refit logged): the folder and the run's output."""
    folder = tmp_path_factory.mktemp("final")
    (folder / "config.py").write_text(CONFIG)
    proc = spawn_reproai(
        ["run", "config.py", "--quiet"],
        cwd=folder,
        env={"MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stdout, stderr = proc.communicate()
    assert proc.returncode == 0, stderr[-3000:]
    return folder, stdout


def digits_png(folder: Path, indices) -> list[Path]:
    """The digits at ``indices`` as PNG files, pixel for pixel what the study trained on."""
    digits = load_digits()
    folder.mkdir(exist_ok=True)
    paths = []
    for i in indices:
        path = folder / f"digit-{i:04d}.png"
        Image.fromarray(np.round(digits.images[i] * (255.0 / 16.0)).astype(np.uint8)).save(path)
        paths.append(path)
    return paths


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def probabilities(table: pd.DataFrame) -> np.ndarray:
    return table[[c for c in table.columns if c.startswith("probability_")]].to_numpy(np.float64)


def test_the_study_ends_with_a_registered_final_model(study, monkeypatch):
    folder, out = study
    assert "final model: models:/final-test@final (the same procedure, search and refit, run once more on all" in out
    assert "the procedure's test roc_auc is" in out and "over 2 outer folds" in out
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    version = client.get_model_version_by_alias("final-test", "final")
    tags = version.tags
    assert tags["reproai.metric"] == "roc_auc" and tags["reproai.n_outer_folds"] == "2"
    assert tags["reproai.trained_on"].endswith("run once more on all the data")
    assert float(tags["reproai.estimate_ci_low"]) <= float(tags["reproai.estimate_mean"]) <= 1.0
    runs = client.search_runs([client.get_experiment_by_name("final-test").experiment_id], max_results=1000)
    final = [r for r in runs if r.data.tags["reproai.level"] == "final"]
    assert len(final) == 1 and final[0].data.tags["reproai.state"] == "complete"
    assert version.run_id == final[0].info.run_id
    final_trials = [
        r for r in runs if r.data.tags["reproai.level"] == "trial" and r.data.tags["reproai.outer_fold"] == "final"
    ]
    assert len(final_trials) == 2  # the same search as each outer fold's: n_trials trials
    study_run = next(r for r in runs if r.data.tags["reproai.level"] == "study")
    assert study_run.data.tags["reproai.final_model"] == "models:/final-test@final"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{folder / 'mlflow.db'}")
    model = mlflow.pyfunc.load_model(f"runs:/{final[0].info.run_id}/model")
    assert [c.name for c in model.metadata.signature.inputs.inputs] == ["image", "id"]
    assert model.metadata.saved_input_example_info is not None


def test_reproai_predict_equals_the_models_own_predictions(study, monkeypatch, capsys):
    folder, _ = study
    monkeypatch.chdir(folder)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{folder / 'mlflow.db'}")
    images = digits_png(folder / "images", range(0, 40, 3))
    (folder / "images" / "broken.png").write_bytes(b"not an image")
    assert main(["predict", "models:/final-test@final", "images", "--out", "predictions.csv", "--quiet"]) == 0
    table = pd.read_csv(folder / "predictions.csv", dtype={"id": str, "predicted": str})
    assert len(table) == len(images) + 1
    broken = table[table["id"] == "images/broken.png"]
    assert broken["error"].iloc[0] == (
        f"Cannot decode image {folder / 'images' / 'broken.png'}: UnidentifiedImageError: cannot identify image file"
    )
    assert broken["predicted"].isna().all()
    ok = table[table["error"].isna()].reset_index(drop=True)
    assert set(ok["predicted"]) <= {str(c) for c in range(10)}
    model = mlflow.pyfunc.load_model("models:/final-test@final")
    direct = model.predict(
        pd.DataFrame({"image": [b64(p) for p in images], "id": [f"images/{p.name}" for p in images]})
    )
    assert (direct["id"] == ok["id"]).all()
    assert np.array_equal(probabilities(direct), probabilities(ok))  # exactly, on a CPU
    assert (direct["predicted"].astype(str) == ok["predicted"].astype(str)).all()
    capsys.readouterr()
    assert main(["predict", "final-test", "images/broken.png", "nowhere.png", "--quiet"]) == 1  # none could be read
    out, err = capsys.readouterr()
    assert f"Cannot read image file {folder / 'nowhere.png'}: No such file or directory." in out
    assert "reproai: 2 of 2 image(s) could not be read (see the error column)" in err
    assert main(["predict", "final-test", "images", "--strict", "--quiet"]) == 2  # the study's name: its final model
    assert re.search(r"images/broken\.png: Cannot decode image .*--strict stops at the first", capsys.readouterr().err)


def test_a_refit_model_gives_the_studys_own_test_predictions(study, monkeypatch):
    """The same images, in the same batches: the logged model's probabilities are the refit's, bit for bit."""
    folder, _ = study
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{folder / 'mlflow.db'}")
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("final-test").experiment_id], max_results=1000)
    fold = next(
        r for r in runs if r.data.tags["reproai.level"] == "outer_fold" and r.data.tags["reproai.outer_fold"] == "0"
    )
    tested = pd.read_json(
        client.download_artifacts(fold.info.run_id, "predictions/test.json", str(folder / "dl")), orient="split"
    )
    indices = [int(i.split("-")[1]) for i in tested["id"]]
    images = digits_png(folder / "test0", indices)
    model = mlflow.pyfunc.load_model(fold.data.tags["reproai.model_uri"])
    out = model.predict(pd.DataFrame({"image": [b64(p) for p in images]}))
    # The network computes float32 probabilities; the logged table keeps 10 significant digits, which pin a
    # float32 down exactly (9 suffice): equal as float32 means the very same numbers.
    assert np.array_equal(probabilities(out).astype(np.float32), probabilities(tested).astype(np.float32))
    assert np.abs(probabilities(out) - probabilities(tested)).max() < 1e-9


def test_the_registered_model_serves_the_same_probabilities(study, monkeypatch):
    folder, _ = study
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    images = digits_png(folder / "served", [5, 17])
    broken = folder / "served" / "broken.png"
    broken.write_bytes(b"not an image")
    with model_server("models:/final-test@final", uri, folder) as post:
        served = post(images)
        mixed = post([images[0], broken])  # strict JSON: null, not NaN, where a row has no value
    # post() parsed the answer as strict JSON: the missing values were null (None, here NaN in pandas)
    assert mixed["error"].isna().tolist() == [True, False] and mixed["predicted"].isna().tolist() == [False, True]
    assert (
        mixed["error"].iloc[1] == "Cannot decode image broken.png: UnidentifiedImageError: cannot identify image file"
    )
    assert mixed["probability_0"].isna().tolist() == [False, True]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    direct = mlflow.pyfunc.load_model("models:/final-test@final").predict(
        pd.DataFrame({"image": [b64(p) for p in images], "id": [p.name for p in images]})
    )
    assert list(served["id"]) == [p.name for p in images]
    assert np.array_equal(probabilities(served), probabilities(direct))
    assert list(served["predicted"].astype(str)) == list(direct["predicted"].astype(str))


def test_analyze_reports_the_final_model_and_its_own_choice(study, monkeypatch, capsys, tmp_path):
    folder, _ = study
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{folder / 'mlflow.db'}")
    capsys.readouterr()
    assert main(["analyze", "final-test", "--out", str(tmp_path / "report"), "--no-log"]) == 0
    out = capsys.readouterr().out
    assert "final model: models:/final-test@final (the same procedure" in out and "over 2 outer folds" in out
    md = (tmp_path / "report" / "report.md").read_text()
    final = md.split("## Final model", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in final.splitlines() if line.startswith("|")]
    assert len(rows) == 3 and "head.dropout" in rows[0]  # header, rule, the final search's one choice
    chosen = md.split("## Chosen hyperparameters", 1)[1].split("\n## ", 1)[0]
    assert len([line for line in chosen.splitlines() if line.startswith("|")]) == 4  # and the 2 outer folds'
