"""Nested cross-validation with the search inside: the run tree, pruning, resume and exact reruns."""

import collections
import json
import signal
import subprocess
import time
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient

from reproai.cli import main
from reproai.runtime import is_claims_study, open_storage, search_fold_key
from tests.conftest import spawn_reproai, tiny_config_text

NESTED = "CrossValidation(outer_folds=3, inner_folds=2)"
SPACE = """
experiment.model.head.dropout = hp.float(0.0, 0.5)
experiment.training.phases[1].lr = hp.float(1e-4, 1e-2, log=True)
"""


def levels(client, name):
    exp = client.get_experiment_by_name(name)
    runs = client.search_runs([exp.experiment_id], max_results=5000)
    out = collections.defaultdict(list)
    for r in runs:
        out[r.data.tags["reproai.level"]].append(r)
    return out


def run_cli(path, uri, storage, *extra):
    return main(["run", str(path), "--tracking-uri", uri, "--storage", storage, "--quiet", *extra])


def signal_inside_a_trial(proc, uri: str, name: str, sig: int, first_trial: int, outer_fold: str = "0") -> int:
    """Send `sig` during the first inner fit of a trial numbered `first_trial` or later of outer fold
    `outer_fold` ("final": the final model's search); returns that trial's number. The trial has a second
    fit to go, so the signal lands inside it however fast the fits are (a trial seen RUNNING in the storage
    may end before a signal sent then lands)."""
    client, deadline = MlflowClient(uri), time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
        try:
            exp = client.get_experiment_by_name(name)
            fits = (
                []
                if exp is None
                else client.search_runs(
                    [exp.experiment_id],
                    f"tags.`reproai.level` = 'fit' and tags.`reproai.outer_fold` = '{outer_fold}' and "
                    "tags.`reproai.inner_fold` = '0' and attributes.status = 'RUNNING'",
                )
            )
        except Exception:  # the store is being created
            continue
        trials = [int(r.data.tags["reproai.trial"]) for r in fits if int(r.data.tags["reproai.trial"]) >= first_trial]
        if trials:
            proc.send_signal(sig)
            return trials[0]
    pytest.fail(f"the search never reached a first inner fit of trial {first_trial} or later")


@pytest.fixture
def stores(tmp_path):
    return f"sqlite:///{tmp_path / 'mlflow.db'}", f"sqlite:///{tmp_path / 'optuna.db'}"


@pytest.mark.slow
def test_nested_study_tree_headline_and_best_params(write_config, stores, monkeypatch):
    uri, storage = stores
    text = (
        tiny_config_text(name="nested", cv=NESTED)
        + SPACE
        + "experiment.search.n_trials = 4\nexperiment.search.pruner = 'none'\n"
    )
    assert run_cli(write_config(text), uri, storage) == 0
    client = MlflowClient(uri)
    runs = levels(client, "nested")
    counts = {k: len(v) for k, v in runs.items()}
    # 3 outer folds x 4 trials x 2 inner fits, plus one refit per outer fold; two phases per fit
    assert counts == {"study": 1, "outer_fold": 3, "trial": 12, "fit": 27, "phase": 54}
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # not mlflow.set_tracking_uri: global state outlives the test
    table = mlflow.search_runs(experiment_names=["nested"], max_results=5000)
    assert table["tags.reproai.level"].value_counts().to_dict() == counts
    assert all(r.info.status == "FINISHED" for rs in runs.values() for r in rs)
    refits = [r for r in runs["fit"] if r.data.tags.get("reproai.refit") == "true"]
    assert len(refits) == 3 and all("reproai.trial" not in r.data.tags for r in refits)
    study = runs["study"][0]
    m = study.data.metrics
    assert m["test_roc_auc_ci_low"] <= m["test_roc_auc_mean"] <= m["test_roc_auc_ci_high"]
    assert m["test_roc_auc_t_ci_low"] >= m["test_roc_auc_ci_low"]  # the corrected interval is wider
    assert m["test_roc_auc_std"] > 0 and "Nadeau-Bengio" in study.data.tags["reproai.ci_method"]
    for fold in runs["outer_fold"]:
        assert {"best.model.head.dropout", "best.training.phases.finetune.lr"} <= set(fold.data.params)
        assert "test_roc_auc" in fold.data.metrics and "best_dev_roc_auc" in fold.data.metrics
    # one Optuna study per outer fold, each with n_trials trials (and the workers' claims beside them)
    names = [
        s.study_name for s in optuna.get_all_study_summaries(open_storage(storage)) if not is_claims_study(s.study_name)
    ]
    assert len(names) == 3 and all(
        n.startswith("nested/") and search_fold_key(n) == str(i) for i, n in enumerate(sorted(names))
    )
    best = json.loads(
        Path(
            client.download_artifacts(study.info.run_id, "search/best_params.json", str(Path(uri[10:]).parent / "dl"))
        ).read_text()
    )
    assert len(best["data"]) == 3


@pytest.mark.slow
def test_pruning_cuts_inner_fits(write_config, stores):
    uri, storage = stores
    # Half of the configurations cannot learn (a learning rate of 1e-7), so the median pruner must stop them.
    text = (
        tiny_config_text(name="prune", cv="CrossValidation(outer_folds=1, inner_folds=3)", epochs=2)
        + "experiment.training.phases[1].lr = hp.categorical([5e-3, 1e-7])\n"
        + "experiment.training.phases[0].lr = hp.categorical([1e-2, 1e-7])\n"
        + "experiment.search.n_trials = 10\nexperiment.search.sampler = 'random'\n"
    )
    assert run_cli(write_config(text), uri, storage) == 0
    runs = levels(MlflowClient(uri), "prune")
    pruned = [t for t in runs["trial"] if t.data.tags.get("reproai.state") == "pruned"]
    inner_fits = [f for f in runs["fit"] if f.data.tags.get("reproai.refit") != "true"]
    assert pruned, "no trial was pruned"
    assert all(t.info.status == "KILLED" for t in pruned)
    # the fit and phase that the pruner stopped end KILLED with their trial: nothing in the study failed
    assert [r.info.run_name for rs in runs.values() for r in rs if r.info.status == "FAILED"] == []
    killed = {level: sum(r.info.status == "KILLED" for r in runs[level]) for level in ("fit", "phase")}
    assert 1 <= killed["phase"] == killed["fit"] <= len(pruned)
    assert len(inner_fits) < 10 * 3  # without pruning: 30
    assert len(inner_fits) == 3 * (10 - len(pruned)) + sum(int(t.data.tags["reproai.inner_folds_run"]) for t in pruned)


def test_a_config_without_search_space_just_fits_each_outer_fold(write_config, stores):
    uri, storage = stores
    assert run_cli(write_config(tiny_config_text(name="plain", cv=NESTED)), uri, storage) == 0
    counts = {k: len(v) for k, v in levels(MlflowClient(uri), "plain").items()}
    assert counts == {"study": 1, "outer_fold": 3, "fit": 3, "phase": 6}


@pytest.mark.slow
def test_running_again_resumes_and_recomputes_nothing(write_config, stores, capsys):
    uri, storage = stores
    text = (
        tiny_config_text(name="again", cv="CrossValidation(outer_folds=2, inner_folds=2)", final_model=True)
        + SPACE
        + "experiment.search.n_trials = 2\n"
    )
    path = write_config(text)
    assert run_cli(path, uri, storage) == 0
    first = {k: len(v) for k, v in levels(MlflowClient(uri), "again").items()}
    assert run_cli(path, uri, storage) == 0
    assert "resumed and finished" in capsys.readouterr().out
    assert {k: len(v) for k, v in levels(MlflowClient(uri), "again").items()} == first
    assert run_cli(path, uri, storage, "--fresh") == 0
    assert len(levels(MlflowClient(uri), "again")["study"]) == 2


def test_splits_file_replaces_the_outer_split(write_config, stores, tmp_path):
    uri, storage = stores
    test_ids = [f"digit-{i:04d}" for i in range(0, 1797, 9)]
    (tmp_path / "test.txt").write_text("\n".join(f"{i} extra columns" for i in test_ids))
    text = tiny_config_text(
        name="given", data="Data.digits()", epochs=1, cv=f"CrossValidation(splits_file={str(tmp_path / 'test.txt')!r})"
    )
    assert run_cli(write_config(text), uri, storage) == 0
    client = MlflowClient(uri)
    study = levels(client, "given")["study"][0]
    splits = json.loads(
        Path(client.download_artifacts(study.info.run_id, "splits.json", str(tmp_path / "dl"))).read_text()
    )
    assert [splits["ids"][i] for i in splits["outer"][0]["test"]] == test_ids


@pytest.mark.slow
def test_rerun_reproduces_fits_byte_for_byte_and_the_study_headline(write_config, stores, capsys):
    uri, storage = stores
    text = (
        tiny_config_text(name="again", cv="CrossValidation(outer_folds=2, inner_folds=2)", final_model=True)
        + SPACE
        + "experiment.search.n_trials = 2\n"
    )
    assert run_cli(write_config(text), uri, storage) == 0
    runs = levels(MlflowClient(uri), "again")
    refits = {r.data.tags["reproai.outer_fold"]: r for r in runs["fit"] if r.data.tags.get("reproai.refit") == "true"}
    trial = runs["trial"][0]
    for run in (refits["0"], trial):
        assert main(["rerun", run.info.run_id, "--tracking-uri", uri, "--quiet"]) == 0
        out = capsys.readouterr().out
        assert "reproduced exactly" in out and "identical, byte for byte" in out
        assert "trained weights identical (sha256" in out
    # The final model's refit predicts no held-out set: its trained weights are what is compared.
    assert main(["rerun", refits["final"].info.run_id, "--tracking-uri", uri, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "reproduced exactly" in out and "trained weights identical (sha256" in out, out
    study = runs["study"][0]
    assert main(["rerun", study.info.run_id, "--tracking-uri", uri, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "reproduced exactly" in out
    studies = levels(MlflowClient(uri), "again")["study"]
    assert len(studies) == 2
    new = next(s for s in studies if s.data.tags.get("reproai.rerun_of") == study.info.run_id)
    assert new.data.metrics["test_roc_auc_mean"] == study.data.metrics["test_roc_auc_mean"]
    # The rerun logged its final model but did not register it: @final still names the original's.
    assert new.data.tags["reproai.final_model"].startswith("runs:/")
    assert str(MlflowClient(uri).get_model_version_by_alias("again", "final").version) == "1"


KILL_CONFIG = (
    tiny_config_text(
        name="killed", data="Data.digits(limit=900)", epochs=4, cv="CrossValidation(outer_folds=2, inner_folds=2)"
    )
    + SPACE
    + "experiment.search.n_trials = 4\nexperiment.search.pruner = 'none'\n"
)


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_says_how_to_resume(write_config, stores, tmp_path):
    uri, storage = stores
    path = write_config(KILL_CONFIG.replace("'killed'", "'interrupted'"))
    args = ["run", str(path), "--tracking-uri", uri, "--storage", storage, "--quiet"]
    proc = spawn_reproai(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    signal_inside_a_trial(proc, uri, "interrupted", signal.SIGINT, first_trial=1)
    _, err = proc.communicate(timeout=120)
    summaries = [
        s for s in optuna.get_all_study_summaries(open_storage(storage)) if search_fold_key(s.study_name) == "0"
    ]
    assert proc.returncode == 130, err
    assert "run the same command again to resume" in err
    study = optuna.load_study(study_name=summaries[0].study_name, storage=open_storage(storage))
    assert not [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
    assert any(t.state == optuna.trial.TrialState.FAIL for t in study.trials)
    runs = [r for rs in levels(MlflowClient(uri), "interrupted").values() for r in rs]
    assert not [r for r in runs if r.info.status == "RUNNING"]
    assert {r.info.status for r in runs if r.data.tags["reproai.level"] in ("study", "outer_fold")} == {"KILLED"}
