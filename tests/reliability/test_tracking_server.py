"""Item 2: the MLflow tracking server goes away mid-study. A short outage is waited out (with a
message) and the study carries on; a long one stops the study cleanly, and the same command resumes
it once the server is back. No trial result is lost and no run is left RUNNING."""

import contextlib
import os
import subprocess
import sys
import time

import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState

from reproai.cluster._local import _free_port, local_tracking_server
from reproai.runtime import is_claims_study
from tests.conftest import REPO, tiny_config_text


class Server:
    """A real ``mlflow server`` on loopback that the test stops and starts again on the same port."""

    def __init__(self, tmp_path):
        self.backend = f"sqlite:///{tmp_path / 'mlflow.db'}"
        self.root = tmp_path / "mlruns"
        self.port = _free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.running = None

    def start(self) -> None:
        self.running = contextlib.ExitStack()
        assert (
            self.running.enter_context(local_tracking_server(self.backend, self.root, port=self.port, workers=1))
            == self.uri
        )

    def stop(self) -> None:
        if self.running is not None:
            self.running.close()  # SIGTERM to the server's process group, and wait
            self.running = None


@pytest.fixture
def server(tmp_path):
    s = Server(tmp_path)
    s.start()
    yield s
    s.stop()


def _trials(storage_url):
    storage = optuna.storages.RDBStorage(storage_url)
    return {
        (s.study_name, t.number): t
        for s in optuna.get_all_study_summaries(storage)
        if not is_claims_study(s.study_name)
        for t in optuna.load_study(study_name=s.study_name, storage=storage).trials
    }


def _start(path, server, storage_url, tmp_path, patience):
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "REPROAI_TRACKING_RETRY_S": str(patience)}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reproai",
            "run",
            str(path),
            "--tracking-uri",
            server.uri,
            "--storage",
            storage_url,
            "--quiet",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_a_complete_trial(proc, storage_url):
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            if any(t.state == TrialState.COMPLETE for t in _trials(storage_url).values()):
                return
        except Exception:  # the storage is being created
            pass
        time.sleep(0.3)
    raise AssertionError("no trial completed")


def _wait_for_a_running_trial_run(proc, tmp_path, name):
    """Wait until a trial's MLflow run is RUNNING (read from the server's own store): an outage from then on
    interrupts a trial whose run exists, which the resume must close as FAILED."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            if any(
                r.info.status == "RUNNING" and r.data.tags["reproai.level"] == "trial" for r in _runs(tmp_path, name)
            ):
                return
        except Exception:  # the store is being written
            pass
        time.sleep(0.1)
    raise AssertionError("no trial run started")


def _config(write_config, name):
    text = tiny_config_text(name=name, cv="CrossValidation(outer_folds=2, inner_folds=2)", epochs=3)
    return write_config(
        text + "experiment.model.head.dropout = hp.float(0.0, 0.5)\n"
        "experiment.search.n_trials = 3\nexperiment.search.pruner = 'none'\n"
    )


def _runs(tmp_path, name):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")  # the server's own store, read directly
    return client.search_runs([client.get_experiment_by_name(name).experiment_id], max_results=1000)


@pytest.mark.slow
def test_a_short_outage_is_waited_out_and_the_study_carries_on(server, write_config, tmp_path):
    storage_url = f"sqlite:///{tmp_path / 'optuna.db'}"
    proc = _start(_config(write_config, "outage"), server, storage_url, tmp_path, patience=300)
    _wait_for_a_complete_trial(proc, storage_url)
    server.stop()
    time.sleep(2)  # and the restart takes seconds more: the outage outlasts several of the study's requests
    server.start()
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    assert f"the MLflow tracking server at {server.uri} is not answering" in err
    assert "retrying for up to 300 s" in err and f"the MLflow tracking server at {server.uri} answers again" in err
    trials = _trials(storage_url)
    assert len(trials) == 2 * 3 and all(t.state == TrialState.COMPLETE for t in trials.values())
    runs = _runs(tmp_path, "outage")
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert len([r for r in runs if r.data.tags["reproai.level"] == "trial"]) == 6
    # every trial run holds its result, logged through the outage
    assert all("dev_roc_auc" in r.data.metrics for r in runs if r.data.tags["reproai.level"] == "trial")


@pytest.mark.slow
def test_a_long_outage_stops_cleanly_and_the_same_command_resumes(server, write_config, tmp_path):
    storage_url = f"sqlite:///{tmp_path / 'optuna.db'}"
    path = _config(write_config, "gone")
    proc = _start(path, server, storage_url, tmp_path, patience=5)
    _wait_for_a_complete_trial(proc, storage_url)
    _wait_for_a_running_trial_run(proc, tmp_path, "gone")
    server.stop()
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 2, err[-3000:]
    assert "has not answered for 5 s" in err and "run the same command again to resume" in err
    before = {k: t.value for k, t in _trials(storage_url).items() if t.state == TrialState.COMPLETE}
    assert before
    server.start()
    proc = _start(path, server, storage_url, tmp_path, patience=300)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    after = {k: t.value for k, t in _trials(storage_url).items() if t.state == TrialState.COMPLETE}
    assert len(after) == 2 * 3 and before.items() <= after.items()  # the finished trials were kept, not rerun
    runs = _runs(tmp_path, "gone")
    assert not [r for r in runs if r.info.status == "RUNNING"]
    study = [r for r in runs if r.data.tags["reproai.level"] == "study"]
    assert len(study) == 1 and study[0].info.status == "FINISHED"
    # the trial the outage interrupted ended FAILED (closed by the resume), and was run again
    assert any(r.info.status == "FAILED" for r in runs if r.data.tags["reproai.level"] == "trial")
