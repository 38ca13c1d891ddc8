"""Item 1 (and 4): SIGTERM (a cluster scheduler's warning before it kills a job) mid-trial: the trial
fails, its runs end KILLED, and the same command resumes the study to the end, logging nothing twice.
SIGKILL mid-trial: the next run closes what the dead process left RUNNING, and retries its trial."""

import collections
import signal
import subprocess

import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState

from reproai.cli import main
from reproai.runtime import open_storage, search_fold_key
from tests.conftest import fold_studies, spawn_reproai, tiny_config_text
from tests.test_nested import KILL_CONFIG, levels, run_cli, signal_inside_a_trial

CONFIG = (
    tiny_config_text(
        name="termed", data="Data.digits(limit=600)", epochs=4, cv="CrossValidation(outer_folds=2, inner_folds=2)"
    )
    + """
experiment.model.head.dropout = hp.float(0.0, 0.5)
experiment.search.n_trials = 3
experiment.search.pruner = 'none'
"""
)


@pytest.mark.slow
def test_sigterm_fails_the_trial_kills_its_runs_and_the_command_resumes(write_config, tmp_path):
    uri, storage = f"sqlite:///{tmp_path / 'mlflow.db'}", f"sqlite:///{tmp_path / 'optuna.db'}"
    path = write_config(CONFIG)
    args = ["run", str(path), "--tracking-uri", uri, "--storage", storage, "--quiet"]
    proc = spawn_reproai(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    signal_inside_a_trial(proc, uri, "termed", signal.SIGTERM, first_trial=0)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "terminated (SIGTERM)" in err and "run the same command again to resume" in err
    (study,) = [
        s for s in optuna.get_all_study_summaries(open_storage(storage)) if search_fold_key(s.study_name) == "0"
    ]
    trials = optuna.load_study(study_name=study.study_name, storage=open_storage(storage)).trials
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    stopped = [t for t in trials if t.state == TrialState.FAIL]
    assert stopped and stopped[0].user_attrs["failed_reason"].startswith("stopped: Terminated")
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("termed")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    assert not [r for r in runs if r.info.status == "RUNNING"]
    killed = {r.data.tags["reproai.level"] for r in runs if r.info.status == "KILLED"}
    assert {"study", "outer_fold", "trial"} <= killed

    assert main(["run", str(path), "--tracking-uri", uri, "--storage", storage, "--quiet"]) == 0  # resumes
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    levels = collections.Counter(r.data.tags["reproai.level"] for r in runs)
    assert levels["study"] == 1 and levels["outer_fold"] == 2
    assert [r.info.status for r in runs if r.data.tags["reproai.level"] == "study"] == ["FINISHED"]
    trials = optuna.load_study(study_name=study.study_name, storage=open_storage(storage)).trials
    assert len([t for t in trials if t.state == TrialState.COMPLETE]) == 3
    # The resume re-logged no parameter (MLflow would have refused a different value) and duplicated no
    # metric history: every metric of every run has each step once.
    for run in runs:
        for key in run.data.metrics:
            steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
            assert len(steps) == len(set(steps)), (run.data.tags["reproai.level"], key, steps)


@pytest.mark.slow
def test_sigkill_mid_search_then_resume(write_config, tmp_path):
    uri, storage = f"sqlite:///{tmp_path / 'mlflow.db'}", f"sqlite:///{tmp_path / 'optuna.db'}"
    path = write_config(KILL_CONFIG)
    args = ["run", str(path), "--tracking-uri", uri, "--storage", storage, "--quiet"]
    proc = spawn_reproai(args, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        killed = signal_inside_a_trial(proc, uri, "killed", signal.SIGKILL, first_trial=2)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    (summary,) = [
        s for s in optuna.get_all_study_summaries(open_storage(storage)) if search_fold_key(s.study_name) == "0"
    ]
    study = optuna.load_study(study_name=summary.study_name, storage=open_storage(storage))
    assert study.trials[killed].state == optuna.trial.TrialState.RUNNING
    done_before = [t.number for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert proc.returncode == -signal.SIGKILL
    client = MlflowClient(uri)
    assert any(r.info.status == "RUNNING" for rs in levels(client, "killed").values() for r in rs)

    assert run_cli(path, uri, storage) == 0  # the same command again

    study = optuna.load_study(study_name=summary.study_name, storage=open_storage(storage))
    by_number = {t.number: t for t in study.trials}
    assert by_number[killed].state == optuna.trial.TrialState.FAIL
    assert "died" in by_number[killed].user_attrs["failed_reason"]
    assert all(by_number[n].state == optuna.trial.TrialState.COMPLETE for n in done_before)
    retry = [t for t in study.trials if t.user_attrs.get("retry_of") == killed]
    assert len(retry) == 1 and retry[0].params == by_number[killed].params
    assert len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))) == 4
    runs = levels(client, "killed")
    assert len(runs["study"]) == 1 and runs["study"][0].info.status == "FINISHED"
    assert not [r for rs in runs.values() for r in rs if r.info.status == "RUNNING"]
    # no completed trial was computed twice: one finished MLflow trial run per completed Optuna trial
    fold0 = [t for t in runs["trial"] if t.data.tags["reproai.outer_fold"] == "0"]
    finished = collections.Counter(int(t.data.tags["reproai.trial"]) for t in fold0 if t.info.status == "FINISHED")
    assert sorted(finished) == sorted(t.number for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE)
    assert set(finished.values()) == {1}
    killed_run = [t for t in fold0 if t.data.tags["reproai.trial"] == str(killed)]
    assert len(killed_run) == 1 and killed_run[0].info.status == "FAILED"
    assert len(runs["outer_fold"]) == 2 and len([f for f in runs["fit"] if f.data.tags.get("reproai.refit")]) == 2


@pytest.mark.slow
def test_sigkill_during_the_final_search_then_resume(write_config, tmp_path):
    """Killed while searching for the final model: the same command again completes the final model,
    computing no finished trial (of the outer folds or of the final search) twice."""
    uri, storage = f"sqlite:///{tmp_path / 'mlflow.db'}", f"sqlite:///{tmp_path / 'optuna.db'}"
    path = write_config(KILL_CONFIG.replace("'killed'", "'final-killed'") + "experiment.cv.final_model = True\n")
    args = ["run", str(path), "--tracking-uri", uri, "--storage", storage, "--quiet"]
    proc = spawn_reproai(args, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        killed = signal_inside_a_trial(proc, uri, "final-killed", signal.SIGKILL, first_trial=1, outer_fold="final")
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    studies = {fold: s.study_name for fold, s in fold_studies(storage).items()}
    final = optuna.load_study(study_name=studies["final"], storage=open_storage(storage))
    assert final.trials[killed].state == TrialState.RUNNING
    done_before = {
        name: [
            t.number
            for t in optuna.load_study(study_name=full, storage=open_storage(storage)).trials
            if t.state == TrialState.COMPLETE
        ]
        for name, full in studies.items()
    }
    assert done_before["0"] == [0, 1, 2, 3] and done_before["1"] == [0, 1, 2, 3]

    assert run_cli(path, uri, storage) == 0  # the same command again

    final = optuna.load_study(study_name=studies["final"], storage=open_storage(storage))
    assert final.trials[killed].state == TrialState.FAIL and "died" in final.trials[killed].user_attrs["failed_reason"]
    assert len(final.get_trials(states=(TrialState.COMPLETE,))) == 4
    runs = levels(MlflowClient(uri), "final-killed")
    assert not [r for rs in runs.values() for r in rs if r.info.status == "RUNNING"]
    for fold in ("0", "1", "final"):
        trials = [t for t in runs["trial"] if t.data.tags["reproai.outer_fold"] == fold and t.info.status == "FINISHED"]
        finished = collections.Counter(int(t.data.tags["reproai.trial"]) for t in trials)
        assert set(finished.values()) == {1}, (fold, finished)  # no finished trial was computed twice
        if fold != "final":
            assert sorted(finished) == done_before[fold]
    assert len(runs["final"]) == 1 and runs["final"][0].data.tags["reproai.state"] == "complete"
    assert runs["study"][0].data.tags["reproai.final_model"] == "models:/final-killed@final"
    assert MlflowClient(uri).get_model_version_by_alias("final-killed", "final").run_id == runs["final"][0].info.run_id
