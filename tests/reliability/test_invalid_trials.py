"""Item 5: a sampled combination that cannot train fails its trial only, with the reason on the trial
and its run; a search whose every trial fails stops with a summary of the reasons."""

from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState

from reproai.cli import main
from reproai.runtime import is_claims_study, open_storage
from tests.conftest import tiny_config_text

CV = "CrossValidation(outer_folds=2, inner_folds=2)"  # 240 digits: about 60 examples per inner training set


def _run(path, tmp_path, *extra):
    return main(
        [
            "run",
            str(path),
            "--tracking-uri",
            f"sqlite:///{tmp_path / 'mlflow.db'}",
            "--storage",
            f"sqlite:///{tmp_path / 'optuna.db'}",
            *extra,
        ]
    )


def _searches(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path / 'optuna.db'}")
    return [
        optuna.load_study(study_name=s.study_name, storage=storage)
        for s in optuna.get_all_study_summaries(storage)
        if not is_claims_study(s.study_name)
    ]


def _runs(tmp_path, name):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    return client, client.search_runs([client.get_experiment_by_name(name).experiment_id], max_results=1000)


@pytest.mark.slow
def test_a_batch_larger_than_the_training_set_fails_that_trial_and_the_study_goes_on(write_config, tmp_path, capsys):
    text = tiny_config_text(name="invalid", cv=CV) + (
        "experiment.training.batch_size = hp.categorical([16, 4096])\n"
        "experiment.search.sampler = 'grid'\nexperiment.search.n_trials = 2\n"
    )
    assert _run(write_config(text), tmp_path) == 0
    assert "failed (training.batch_size=4096 is larger than the training set" in capsys.readouterr().err
    for search in _searches(tmp_path):
        by_state = {t.state: t for t in search.trials}
        assert set(by_state) == {TrialState.COMPLETE, TrialState.FAIL} and len(search.trials) == 2
        failed = by_state[TrialState.FAIL]
        assert failed.params == {"training.batch_size": 4096}
        assert failed.user_attrs["failed_reason"].startswith(
            "training.batch_size=4096 is larger than the training set ("
        )
        assert search.best_trial.params == {"training.batch_size": 16}
    client, runs = _runs(tmp_path, "invalid")
    trials = [r for r in runs if r.data.tags["reproai.level"] == "trial"]
    bad = [r for r in trials if r.data.params["training.batch_size"] == "4096"]
    assert len(trials) == 4 and len(bad) == 2
    for r in bad:
        assert r.info.status == "FAILED" and r.data.tags["reproai.state"] == "failed"
        assert "is larger than the training set" in r.data.tags["reproai.error"]
        text = client.download_artifacts(r.info.run_id, "error.txt", str(tmp_path))
        assert "InvalidParamsError" in Path(text).read_text()  # the traceback, for the user to read
    # the study went on: both outer folds refitted with batch 16, and the headline was written
    folds = [r for r in runs if r.data.tags["reproai.level"] == "outer_fold"]
    assert [r.data.params["best.training.batch_size"] for r in folds] == ["16", "16"]
    study = next(r for r in runs if r.data.tags["reproai.level"] == "study")
    assert study.info.status == "FINISHED" and "test_roc_auc_mean" in study.data.metrics
    assert not [r for r in runs if r.info.status == "RUNNING"]


@pytest.mark.slow
def test_a_search_whose_every_trial_fails_stops_with_a_summary_of_the_reasons(write_config, tmp_path, capsys):
    text = tiny_config_text(name="hopeless", cv=CV) + (
        "experiment.training.batch_size = hp.categorical([2048, 4096])\n"
        "experiment.search.sampler = 'grid'\nexperiment.search.n_trials = 2\n"
    )
    assert _run(write_config(text), tmp_path, "--quiet") == 2
    err = capsys.readouterr().err
    assert "Outer fold 0: no trial completed (2 failed, 0 pruned), so there is nothing to refit. Reasons:" in err
    assert "1 x training.batch_size=2048 is larger than the training set" in err
    assert "1 x training.batch_size=4096 is larger than the training set" in err
    # it stopped at the first outer fold, and left nothing RUNNING
    (search,) = _searches(tmp_path)
    assert [t.state for t in search.trials] == [TrialState.FAIL, TrialState.FAIL]
    _, runs = _runs(tmp_path, "hopeless")
    assert {r.data.tags["reproai.level"] for r in runs} == {"study", "outer_fold", "trial", "fit"}
    assert {r.info.status for r in runs} == {"FAILED"}


def test_a_fixed_batch_size_larger_than_every_training_set_is_refused_before_any_work(write_config, tmp_path, capsys):
    text = tiny_config_text(name="toolarge", cv=CV) + "experiment.training.batch_size = 100\n"
    assert _run(write_config(text), tmp_path, "--quiet") == 2
    assert (
        "training.batch_size=100 is larger than the smallest training set of the splits (60 examples)"
        in capsys.readouterr().err
    )
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert client.get_experiment_by_name("toolarge") is None  # no run was started
