"""Medical images end to end: 16-bit PNGs whose signal survives only a window that hot pixels do not set,
a searched intensity policy, and the DICOM example study, whose final model predicts (in `reproai predict`
and served by MLflow) what the study computed."""

import json
import re
import shutil
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from PIL import Image

from reproai.cli import main
from tests.conftest import REPO, model_server

pytestmark = pytest.mark.slow


def write_16bit_discs(folder: Path, n: int = 120, size: int = 48, seed: int = 0) -> Path:
    """16-bit PNGs (mode I;16): a faint disc (+40 counts on 1100 +/- 8) or none, and 5 hot pixels at 65535
    in every image, as real detectors have. Returns the table."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    folder.mkdir(parents=True)
    rows = []
    for i in range(n):
        label = "disc" if i % 2 else "normal"
        a = 1100 + rng.normal(0, 8, (size, size))
        if label == "disc":
            cy, cx = rng.uniform(size * 0.3, size * 0.7, 2)
            a[(yy - cy) ** 2 + (xx - cx) ** 2 <= (size / 6) ** 2] += 40
        a = np.rint(a).astype(np.uint16)
        a.flat[rng.choice(a.size, 5, replace=False)] = 65535
        image = Image.fromarray(a)
        assert image.mode == "I;16"
        image.save(folder / f"{i:03d}.png")
        rows.append(f"{i:03d}.png,{label}")
    (folder / "images.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    return folder / "images.csv"


CONFIG_16BIT = """
from reproai import CrossValidation, Data, Experiment, Head, Intensity, Model, Phase, Search, Training, hp

experiment = Experiment(
    name={name!r},
    data=Data.table({table!r}, intensity={intensity}),
    model=Model(backbone="small_cnn", pretrained=False, image_size=32, head=Head(hidden=16)),
    training=Training(batch_size=32, phases=[Phase("train", epochs=8, lr=1e-2)]),
    cv=CrossValidation(outer_folds=3, inner_folds=1, final_model=False),
    search=Search(metric="log_loss"{search}),
    seed=3,
)
"""


def fold_aucs(out: str) -> list[float]:
    """The roc_auc column of the fold table `reproai run` prints."""
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:3] == ["repeat", "outer_fold", "roc_auc"])
    return [float(line.split()[2]) for line in lines[header + 1 :] if re.match(r"\s+\d+\s+\d+\s", line)]


def test_16_bit_images_learn_under_the_default_window_and_not_when_scaled_by_their_maximum(
    tmp_path, write_config, capsys
):
    table = write_16bit_discs(tmp_path / "png16")
    aucs = {}
    for name, intensity in (("window", "Intensity()"), ("max", "Intensity(kind='max')")):
        config = write_config(CONFIG_16BIT.format(name=name, table=str(table), intensity=intensity, search=""))
        capsys.readouterr()
        assert main(["run", str(config), "--quiet"]) == 0
        aucs[name] = fold_aucs(capsys.readouterr().out)
    assert len(aucs["window"]) == 3 and min(aucs["window"]) >= 0.9, aucs
    # Each image scaled by its own maximum (a hot pixel, 65535): the disc is 40/257 of a grey level.
    assert np.mean(aucs["max"]) < 0.7, aucs


def test_a_searched_intensity_policy_decodes_each_trials_images_with_its_own_policy(tmp_path, write_config, capsys):
    table = write_16bit_discs(tmp_path / "png16", n=80)
    intensity = "Intensity(kind=hp.categorical(['percentile', 'max']))"
    config = write_config(
        CONFIG_16BIT.format(
            name="searched", table=str(table), intensity=intensity, search=", n_trials=2, sampler='grid'"
        )
        .replace("outer_folds=3, inner_folds=1", "outer_folds=2, inner_folds=2")
        .replace("batch_size=32", "batch_size=16")
    )
    assert main(["space", str(config)]) == 0
    assert "data.intensity.kind" in capsys.readouterr().out
    assert main(["run", str(config), "--quiet"]) == 0
    client = MlflowClient()
    runs = client.search_runs([client.get_experiment_by_name("searched").experiment_id], max_results=500)
    trials = [r for r in runs if r.data.tags.get("reproai.level") == "trial"]
    by_policy: dict[str, list[float]] = {}
    for r in trials:
        by_policy.setdefault(r.data.params["data.intensity.kind"], []).append(r.data.metrics["dev_log_loss"])
    assert set(by_policy) == {"percentile", "max"} and all(len(v) == 2 for v in by_policy.values()), by_policy
    assert max(by_policy["percentile"]) < 0.3 < 0.6 < min(by_policy["max"]), by_policy
    folds = [r for r in runs if r.data.tags.get("reproai.level") == "outer_fold"]
    assert {r.data.params["best.data.intensity.kind"] for r in folds} == {"percentile"}


@pytest.fixture(scope="module")
def dicom_study(tmp_path_factory):
    """configs/dicom_discs.py as it is (it writes its DICOM set beside itself), with each refit's model
    logged: the folder, the run's output and the tracking URI."""
    folder = tmp_path_factory.mktemp("dicom")
    shutil.copy(REPO / "configs" / "dicom_discs.py", folder / "config.py")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.setenv("REPROAI_CACHE_DIR", str(folder / "cache"))
        import contextlib
        import io

        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = main(["run", "config.py", "--quiet", "--set", "cv.log_refits=True"])
    assert code == 0, out.getvalue()[-3000:]
    return folder, out.getvalue(), uri


def b64(path: Path) -> str:
    import base64

    return base64.b64encode(path.read_bytes()).decode()


def probabilities(table: pd.DataFrame) -> np.ndarray:
    return table[[c for c in table.columns if c.startswith("probability_")]].to_numpy(np.float64)


def test_the_dicom_example_learns_what_only_correct_decoding_shows(dicom_study):
    folder, out, uri = dicom_study
    images = sorted((folder / "data" / "dicom-discs" / "images").iterdir())
    assert len(images) == 160 and all(p.read_bytes()[128:132] == b"DICM" for p in images)
    aucs = fold_aucs(out)
    assert len(aucs) == 3 and min(aucs) >= 0.9, out
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("dicom-discs").experiment_id], max_results=1000)
    study = next(r for r in runs if r.data.tags["reproai.level"] == "study")
    assert study.data.tags["reproai.n_groups"] == "80"  # the groups came from the files' PatientID
    final = next(r for r in runs if r.data.tags["reproai.level"] == "final")
    local = client.download_artifacts(final.info.run_id, "model/artifacts/preprocessing.json", str(folder / "dl"))
    assert json.loads(Path(local).read_text())["intensity"] == {
        "kind": "auto",
        "center": None,
        "width": None,
        "percentiles": [0.5, 99.5],
    }


def test_a_refit_model_on_dicom_files_gives_the_studys_own_test_probabilities(dicom_study, monkeypatch):
    folder, _, uri = dicom_study
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("dicom-discs").experiment_id], max_results=1000)
    fold = next(
        r for r in runs if r.data.tags["reproai.level"] == "outer_fold" and r.data.tags["reproai.outer_fold"] == "0"
    )
    tested = pd.read_json(
        client.download_artifacts(fold.info.run_id, "predictions/test.json", str(folder / "dl0")), orient="split"
    )
    files = [folder / "data" / "dicom-discs" / i for i in tested["id"]]
    model = mlflow.pyfunc.load_model(fold.data.tags["reproai.model_uri"])
    out = model.predict(pd.DataFrame({"image": [b64(p) for p in files]}))
    assert out["error"].isna().all()
    # The table logs the probability of the second class ("dark"), to 10 decimal places.
    assert np.abs(out["probability_dark"].to_numpy() - tested["probability"].to_numpy()).max() < 1e-9


def test_reproai_predict_and_the_served_model_give_the_dicom_models_own_probabilities(dicom_study, monkeypatch, capsys):
    folder, _, uri = dicom_study
    monkeypatch.chdir(folder)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    images = sorted((folder / "data" / "dicom-discs" / "images").iterdir())[:12]
    chosen = folder / "chosen"
    chosen.mkdir()
    for p in images:  # DICOM by content: one without an extension, one named .png
        shutil.copy(p, chosen / {0: p.stem, 1: f"{p.stem}.png"}.get(images.index(p), p.name))
    files = sorted(chosen.iterdir())
    assert main(["predict", "dicom-discs", str(chosen), "--out", "predictions.csv", "--quiet"]) == 0
    predicted = pd.read_csv(folder / "predictions.csv")
    assert len(predicted) == 12 and predicted["error"].isna().all()
    direct = mlflow.pyfunc.load_model("models:/dicom-discs@final").predict(
        pd.DataFrame({"image": [b64(p) for p in files], "id": [str(p) for p in files]})
    )
    assert list(predicted["id"]) == [str(p) for p in files]
    assert np.array_equal(probabilities(predicted), probabilities(direct))
    with model_server("models:/dicom-discs@final", uri, folder) as post:
        served = post(files)
    assert np.array_equal(probabilities(served), probabilities(direct))
    labels = {p.stem: ("bright" if int(p.stem[3:7]) % 2 == 0 else "dark") for p in files}
    assert (direct["predicted"].tolist()) == [labels[p.stem.split(".")[0]] for p in files]
