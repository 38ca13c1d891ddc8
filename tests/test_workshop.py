"""The workshop track: every step's train.py and analyze_predictions.py end to end on a few dozen real
images with the real pretrained weights, and what each step must have logged."""

import json
import os
import subprocess
import sys

import pytest
from mlflow import MlflowClient

from tests.conftest import PETS_ROOT, REPO, WEIGHTS, needs_shared

pytestmark = [needs_shared(), needs_shared(WEIGHTS)]
SMALL = [
    "--data-root",
    str(PETS_ROOT),
    "--pretrained",
    str(WEIGHTS),
    "--limit",
    "40",
    "--image-size",
    "64",
    "--batch-size",
    "8",
    "--epochs",
    "1",
    "1",
]


def step(n, script, *args, cwd):
    out = subprocess.run(
        [sys.executable, str(REPO / "workshop" / f"step_{n}" / script), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ},
        timeout=900,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def runs_of(client, experiment):
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no MLflow experiment {experiment}"
    return client.search_runs([exp.experiment_id], max_results=1000)


@pytest.mark.slow
@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_help(n):
    for script in ("train.py", "analyze_predictions.py"):
        out = subprocess.run(
            [sys.executable, str(REPO / "workshop" / f"step_{n}" / script), "--help"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0 and "usage:" in out.stdout


@pytest.mark.slow
def test_step_1_writes_local_files(tmp_path):
    assert "test ROC AUC" in step(1, "train.py", *SMALL, cwd=tmp_path)
    out = tmp_path / "results" / "step_1"
    assert {"predictions_dev.csv", "predictions_test.csv", "metrics.json"} <= {p.name for p in out.iterdir()}
    assert "roc_auc" in json.loads((out / "metrics.json").read_text())["test"]
    assert "roc_auc" in step(1, "analyze_predictions.py", cwd=tmp_path)
    assert (out / "roc.png").stat().st_size > 1000 and (out / "probability_density.png").exists()


@pytest.mark.slow
def test_step_2_tracks_params_split_tables_and_nested_phases(tmp_path):
    step(2, "train.py", *SMALL, cwd=tmp_path)
    step(2, "analyze_predictions.py", cwd=tmp_path)
    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    runs = runs_of(client, "workshop-step-2")
    (fit,) = [r for r in runs if r.info.run_name == "fit"]
    phases = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == fit.info.run_id]
    assert sorted(r.data.tags["reproai.phase"] for r in phases) == ["finetune", "warmup"]
    assert {"lr_warmup", "lr_finetune", "seed"} <= set(fit.data.params)
    assert {"test_roc_auc", "dev_roc_auc", "threshold", "analysis_test_roc_auc"} <= set(fit.data.metrics)
    paths = (
        {a.path for a in client.list_artifacts(fit.info.run_id)}
        | {a.path for a in client.list_artifacts(fit.info.run_id, "predictions")}
        | {a.path for a in client.list_artifacts(fit.info.run_id, "figures")}
    )
    assert {"split.json", "predictions/test.json", "predictions/dev.json", "figures/roc.png"} <= paths


@pytest.mark.slow
@pytest.mark.parametrize("n, name", [(3, "nested-cv"), (4, "search")])
def test_steps_3_and_4_nest_folds_and_report_over_outer_folds(n, name, tmp_path):
    extra = ["--folds", "2"] + (["--trials", "2"] if n == 4 else [])
    assert "Nadeau-Bengio" in step(n, "train.py", *SMALL, *extra, cwd=tmp_path)
    step(n, "analyze_predictions.py", cwd=tmp_path)
    runs = runs_of(MlflowClient(os.environ["MLFLOW_TRACKING_URI"]), f"workshop-step-{n}")
    (top,) = [r for r in runs if r.info.run_name == name]
    outer = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == top.info.run_id]
    assert sorted(r.info.run_name for r in outer) == ["outer-0", "outer-1"]
    assert all("test_roc_auc" in r.data.metrics for r in outer)
    assert {"test_roc_auc_mean", "test_roc_auc_ci_low", "analysis_roc_auc_mean"} <= set(top.data.metrics)
    if n == 4:
        trials = [r for r in runs if r.info.run_name.startswith("trial-")]
        assert len(trials) == 2 * 2 and all("dev_roc_auc" in t.data.metrics for t in trials)
        assert all("best_lr_finetune" in r.data.params for r in outer)


@pytest.mark.slow
def test_step_5_runs_the_config_file_and_reruns_from_the_logged_copy(tmp_path):
    out = step(5, "train.py", *SMALL, "--folds", "2", "--trials", "2", cwd=tmp_path)
    assert "re-run it from what was logged" in out
    step(5, "analyze_predictions.py", cwd=tmp_path)
    assert (tmp_path / "results" / "step_5" / "report.html").exists()
    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    runs = runs_of(client, "workshop-step-5")
    (study,) = [r for r in runs if r.data.tags.get("reproai.level") == "study"]
    logged = {a.path for a in client.list_artifacts(study.info.run_id, "config")}
    assert {"config/config.py", "config/overrides.json", "config/resolved.json"} <= logged
    fit = next(  # an outer fold's refit: its test predictions are compared
        r for r in runs if r.data.tags.get("reproai.refit") == "true" and r.data.tags["reproai.outer_fold"] != "final"
    )
    out = step(5, "train.py", "--data-root", str(PETS_ROOT), "--rerun", fit.info.run_id, cwd=tmp_path)
    assert "identical" in out


def test_notebook_is_valid_and_uses_the_readmes_commands():
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(REPO / "workshop" / "run_on_colab.ipynb", as_version=4)
    nbformat.validate(nb)
    readme = (REPO / "workshop" / "README.md").read_text()
    commands = [
        line[1:].strip()
        for cell in nb.cells
        if cell.cell_type == "code"
        for line in cell.source.splitlines()
        if line.startswith("!python workshop/")
    ]
    steps = [c.split("/")[1] for c in commands if c.endswith("train.py $OPTS") or "train.py $OPTS " in c]
    assert steps == ["step_1", "step_2", "step_3", "step_4", "step_5"]  # in the order a participant follows
    for command in commands:
        if "--rerun" in command:
            assert "workshop/step_5/train.py --data-root" in readme and "--rerun" in readme
        else:
            assert command in readme, f"notebook command not in workshop/README.md: {command}"
    assert '!pip install -q -e ".[dev]"' in "".join(c.source for c in nb.cells)


def test_environment_yml_names_the_conda_environment():
    text = (REPO / "environment.yml").read_text()
    assert "name: reproai" in text and "- -e .[dev]" in text
