"""SIGTERM (a cluster scheduler's warning before it kills a job) mid-trial: the trial fails, its runs end
KILLED, and the same command resumes the study to the end."""

import collections
import os
import signal
import subprocess
import sys
import time

import optuna
from mlflow import MlflowClient
from optuna.trial import TrialState

from reproai.cli import main
from reproai.search import open_storage
from tests.conftest import REPO, tiny_config_text

CONFIG = tiny_config_text(name="termed", data="Data.digits(limit=600)", epochs=4,
                          cv="CrossValidation(outer_folds=2, inner_folds=2)") + """
experiment.model.head.dropout = hp.float(0.0, 0.5)
experiment.search.n_trials = 3
experiment.search.pruner = 'none'
"""


def test_sigterm_fails_the_trial_kills_its_runs_and_the_command_resumes(write_config, tmp_path):
    uri, storage = f"sqlite:///{tmp_path / 'mlflow.db'}", f"sqlite:///{tmp_path / 'optuna.db'}"
    path = write_config(CONFIG)
    cmd = [sys.executable, "-m", "reproai", "run", str(path), "--tracking-uri", uri, "--storage", storage, "--quiet"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    deadline, study = time.time() + 240, None
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.3)
        names = [s.study_name for s in optuna.get_all_study_summaries(open_storage(storage))
                 if s.study_name.endswith("/outer-0") and not s.study_name.startswith("reproai-claims/")]
        if names:
            study = optuna.load_study(study_name=names[0], storage=open_storage(storage))
            if any(t.state == TrialState.RUNNING for t in study.trials):
                time.sleep(0.5)
                proc.send_signal(signal.SIGTERM)
                break
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "terminated (SIGTERM)" in err and "run the same command again to resume" in err
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
