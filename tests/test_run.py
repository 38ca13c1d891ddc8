"""End to end: `reproai run` on a tiny config, read back from a real MLflow store."""

import json
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from reproai.cli import main
from tests.conftest import tiny_config_text


def runs_by_level(client: MlflowClient, experiment: str) -> dict[str, list]:
    exp = client.get_experiment_by_name(experiment)
    out: dict[str, list] = {}
    for r in client.search_runs([exp.experiment_id], max_results=1000):
        out.setdefault(r.data.tags["reproai.level"], []).append(r)
    return out


@pytest.fixture
def tracked(tmp_path, write_config):
    uri = f"sqlite:///{tmp_path / 'runs.db'}"
    path = write_config(tiny_config_text(name="tiny-e2e"))
    assert main(["run", str(path), "--tracking-uri", uri, "--quiet"]) == 0
    return MlflowClient(uri), path


def test_run_logs_the_whole_tree_with_tags_tables_and_artifacts(tracked, tmp_path):
    client, path = tracked
    levels = runs_by_level(client, "tiny-e2e")
    assert {k: len(v) for k, v in levels.items()} == {"study": 1, "outer_fold": 1, "fit": 1, "phase": 2}
    study, fold, fit, phases = levels["study"][0], levels["outer_fold"][0], levels["fit"][0], levels["phase"]
    assert all(r.info.status == "FINISHED" for rs in levels.values() for r in rs)
    # nesting: study -> outer fold -> fit -> phases, and every run knows its study
    assert fold.data.tags["mlflow.parentRunId"] == study.info.run_id
    assert fit.data.tags["mlflow.parentRunId"] == fold.info.run_id
    assert {p.data.tags["mlflow.parentRunId"] for p in phases} == {fit.info.run_id}
    assert {r.data.tags["reproai.study_id"] for rs in levels.values() for r in rs} == {study.info.run_id}
    assert sorted(p.data.tags["reproai.phase"] for p in phases) == ["finetune", "warmup"]
    # per-epoch metrics in the phase runs
    finetune = next(p for p in phases if p.data.tags["reproai.phase"] == "finetune")
    history = client.get_metric_history(finetune.info.run_id, "dev_roc_auc")
    assert [m.step for m in history] == list(range(1, len(history) + 1)) and len(history) >= 1
    # each phase's summary, logged with its last epoch
    last = len(client.get_metric_history(finetune.info.run_id, "train_loss"))
    assert [m.step for m in client.get_metric_history(finetune.info.run_id, "best_epoch")] == [last]
    assert 1 <= finetune.data.metrics["best_epoch"] <= last and "best_dev_roc_auc" in finetune.data.metrics
    assert {"seed", "kind", "n_train", "n_dev", "n_test"} <= set(fit.data.params)
    # the study run's provenance
    tags = study.data.tags
    assert tags["reproai.config_file"] == "config.py" and len(tags["reproai.config_hash"]) == 16
    assert tags["reproai.seed"] == "7" and tags["reproai.data_fingerprint"]
    assert study.data.params["training.phases.finetune.lr"] == "0.003"
    arts = {a.path for a in client.list_artifacts(study.info.run_id)} | {
        a.path for d in ("config",) for a in client.list_artifacts(study.info.run_id, d)
    }
    assert {
        "config/config.py",
        "config/resolved.json",
        "config/overrides.json",
        "splits.json",
        "environment.json",
    } <= arts
    dst = tmp_path / "dl"
    assert (
        Path(client.download_artifacts(study.info.run_id, "config/config.py", str(dst))).read_text() == path.read_text()
    )
    env = json.loads(Path(client.download_artifacts(study.info.run_id, "environment.json", str(dst))).read_text())
    assert {"python", "platform", "packages", "gpus", "git", "cpu_count"} <= set(env) and "torch" in env["packages"]
    splits = json.loads(Path(client.download_artifacts(study.info.run_id, "splits.json", str(dst))).read_text())
    assert splits["n"] == 240 and len(splits["outer"]) == 1
    # prediction tables on the fit run, and metrics with the threshold
    for name in ("dev", "test"):
        table = pd.read_json(
            client.download_artifacts(fit.info.run_id, f"predictions/{name}.json", str(dst)), orient="split"
        )
        assert list(table.columns)[:2] == ["id", "label"] and "predicted" in table.columns
        n = len(splits["outer"][0]["inner"][0]["dev"] if name == "dev" else splits["outer"][0]["test"])
        assert len(table) == n
    assert "test_roc_auc" in fit.data.metrics and "dev_roc_auc" in fit.data.metrics
    assert study.data.metrics["test_roc_auc_mean"] == pytest.approx(fold.data.metrics["test_roc_auc"])


def test_two_runs_give_byte_identical_test_tables(tmp_path, write_config):
    uri = f"sqlite:///{tmp_path / 'runs.db'}"
    path = write_config(tiny_config_text(name="twice"))
    for _ in range(2):
        assert main(["run", str(path), "--tracking-uri", uri, "--quiet", "--fresh"]) == 0
    client = MlflowClient(uri)
    fits = runs_by_level(client, "twice")["fit"]
    assert len(fits) == 2
    blobs = [
        Path(
            client.download_artifacts(r.info.run_id, "predictions/test.json", str(tmp_path / r.info.run_id))
        ).read_bytes()
        for r in fits
    ]
    assert blobs[0] == blobs[1] and len(blobs[0]) > 1000


def test_tracking_uri_defaults_to_sqlite_in_the_working_directory(tmp_path, write_config, monkeypatch, capsys):
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    path = write_config(tiny_config_text(name="default-uri", epochs=1))
    assert main(["run", str(path), "--quiet"]) == 0
    assert (tmp_path / "mlflow.db").exists()
    assert "sqlite:///mlflow.db" in capsys.readouterr().out


def test_status_reports_a_finished_study(tracked, tmp_path, capsys):
    capsys.readouterr()
    uri = f"sqlite:///{tmp_path / 'runs.db'}"
    assert main(["status", "tiny-e2e", "--tracking-uri", uri, "--storage", f"sqlite:///{tmp_path / 'optuna.db'}"]) == 0
    out = capsys.readouterr().out
    assert "finished; 1 of 1 outer folds done" in out


def test_status_with_another_storage_says_which_one_the_study_ran_with(tracked, tmp_path, capsys):
    capsys.readouterr()
    uri = f"sqlite:///{tmp_path / 'runs.db'}"
    assert main(["status", "tiny-e2e", "--tracking-uri", uri, "--storage", f"sqlite:///{tmp_path / 'other.db'}"]) == 2
    err = capsys.readouterr().err
    assert "holds nothing of study run" in err and "it ran with sqlite:///optuna.db" in err


def test_with_one_outer_fold_the_final_model_is_that_folds_refit_and_says_so(tmp_path, write_config, capsys):
    uri = f"sqlite:///{tmp_path / 'runs.db'}"
    path = write_config(tiny_config_text(name="one-fold-final", epochs=1, final_model=True))
    assert main(["run", str(path), "--tracking-uri", uri, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "final model: models:/one-fold-final@final (outer fold 0's refit, trained on that fold's training" in out
    version = MlflowClient(uri).get_model_version_by_alias("one-fold-final", "final")
    assert version.tags["reproai.trained_on"].startswith("outer fold 0's refit")
    assert MlflowClient(uri).get_run(version.run_id).data.tags["reproai.level"] == "outer_fold"
    with pytest.warns(UserWarning, match=r"@final moved from version 1 .* to version 2; .*models:/one-fold-final/1"):
        assert main(["run", str(path), "--tracking-uri", uri, "--quiet", "--fresh"]) == 0
