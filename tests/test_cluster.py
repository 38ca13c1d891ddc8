"""Scale-out: several worker processes on one study, through a real PostgreSQL (or a journal file) and a
real MLflow tracking server on loopback; a worker killed mid-trial; `reproai status`."""

import collections
import os
import signal
import subprocess
import time
import uuid

import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState

from reproai.cli import main
from reproai.cluster._local import check_parallel_storage
from reproai.errors import ConfigError
from reproai.runtime import open_storage
from tests.conftest import fold_studies, tiny_config_text

PG = os.environ.get("REPROAI_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
N_TRIALS = 4
CONFIG = (
    tiny_config_text(
        name="cluster", data="Data.digits(limit=300)", epochs=2, cv="CrossValidation(outer_folds=2, inner_folds=2)"
    )
    + f"""
experiment.model.head.dropout = hp.float(0.0, 0.5)
experiment.training.phases[1].lr = hp.float(1e-4, 1e-2, log=True)
experiment.search.n_trials = {N_TRIALS}
experiment.search.pruner = 'none'
"""
)


def _postgres_database():
    """A fresh database on the PostgreSQL server; dropped afterwards."""
    import psycopg

    name = f"reproai_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(f"{PG}/postgres", connect_timeout=5, autocommit=True)
    except psycopg.OperationalError as e:
        if os.environ.get("REPROAI_REQUIRE_POSTGRES"):
            pytest.fail(f"PostgreSQL at {PG} is required (REPROAI_REQUIRE_POSTGRES) but unreachable: {e}")
        pytest.skip(f"needs PostgreSQL at {PG} (start it with pg_ctlcluster): {e}")
    admin.execute(f"CREATE DATABASE {name}")
    return admin, name


@pytest.fixture(params=["postgresql", "journal"])
def storage(request, tmp_path):
    if request.param == "journal":
        yield f"journal:{tmp_path / 'optuna.journal'}"
        return
    admin, name = _postgres_database()
    yield f"{PG}/{name}"
    admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.close()


def _finish(proc, timeout=420):
    """The output of a worker; a worker still running after ``timeout`` prints its stacks and fails the test."""
    try:
        return proc.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGUSR1)
        time.sleep(2)
        proc.kill()  # the fixture kills the other workers
        pytest.fail(f"worker {proc.pid} did not finish:\n{proc.communicate()[0][-20000:]}")


def _check_study(uri, storage, killed=None):
    """Every invariant of a finished shared study, across the Optuna storage and the MLflow tree."""
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("cluster")
    runs = client.search_runs([exp.experiment_id], max_results=5000)
    by_level = collections.defaultdict(list)
    for r in runs:
        by_level[r.data.tags["reproai.level"]].append(r)
    assert len(by_level["study"]) == 1 and by_level["study"][0].info.status == "FINISHED"
    study_id = by_level["study"][0].info.run_id
    assert len(client.get_metric_history(study_id, "test_roc_auc_mean")) == 1  # the headline, written once
    assert not [r for r in runs if r.info.status == "RUNNING"]
    folds = fold_studies(storage)
    assert sorted(folds) == ["0", "1"]
    assert len(by_level["outer_fold"]) == 2
    for key, study in folds.items():
        fold = key
        trials = study.get_trials(deepcopy=False)
        numbers = [t.number for t in trials]
        assert len(numbers) == len(set(numbers))
        complete = sorted(t.number for t in trials if t.state == TrialState.COMPLETE)
        assert len(complete) == N_TRIALS
        assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
        # the MLflow tree matches the storage: one finished trial run per completed trial, nothing twice
        trial_runs = [r for r in by_level["trial"] if r.data.tags["reproai.outer_fold"] == fold]
        finished = collections.Counter(
            int(r.data.tags["reproai.trial"]) for r in trial_runs if r.info.status == "FINISHED"
        )
        assert sorted(finished) == complete and set(finished.values()) == {1}
        refits = [
            r
            for r in by_level["fit"]
            if r.data.tags.get("reproai.refit") == "true" and r.data.tags["reproai.outer_fold"] == fold
        ]
        assert len(refits) == 1 and refits[0].info.status == "FINISHED"
        (fold_run,) = [r for r in by_level["outer_fold"] if r.data.tags["reproai.outer_fold"] == fold]
        tables = [a.path for a in client.list_artifacts(fold_run.info.run_id, "predictions")]
        assert tables == ["predictions/test.json"] and fold_run.data.tags["reproai.state"] == "complete"
    return by_level, folds


@pytest.mark.slow
def test_three_workers_share_one_study(write_config, storage, tracking_server, workers, tmp_path):
    path = write_config(CONFIG)
    procs = workers(path, tracking_server, storage, 3, tmp_path)
    outs = [_finish(p) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], "\n-----\n".join(outs)
    by_level, folds = _check_study(tracking_server, storage)
    workers = {t.user_attrs["worker"] for s in folds.values() for t in s.trials if t.state == TrialState.COMPLETE}
    assert len(workers) >= 2  # the trials were shared out
    # every worker reports the same study and headline
    heads = {line for out in outs for line in out.splitlines() if line.startswith("test roc_auc")}
    assert len(heads) == 1
    # reproai status reads the progress back from the storage
    assert main(["status", "cluster", "--tracking-uri", tracking_server, "--storage", storage]) == 0


@pytest.mark.slow
def test_a_worker_killed_mid_trial_is_failed_and_retried(write_config, storage, tracking_server, workers, tmp_path):
    path = write_config(CONFIG.replace("epochs=2, lr=3e-3", "epochs=4, lr=3e-3"))
    procs = workers(path, tracking_server, storage, 3, tmp_path)
    by_pid = {p.pid: p for p in procs}
    victim, killed = None, None
    deadline = time.time() + 300
    while victim is None and time.time() < deadline:
        time.sleep(0.3)
        for study in fold_studies(storage).values():
            trials = study.get_trials(deepcopy=False)
            running = [t for t in trials if t.state == TrialState.RUNNING and "worker" in t.user_attrs]
            if running and any(t.state == TrialState.COMPLETE for t in trials):
                pid = int(running[0].user_attrs["worker"].split(":")[1])
                if pid in by_pid:
                    time.sleep(0.5)  # well inside the trial
                    if study.trials[running[0].number].state == TrialState.RUNNING:
                        victim, killed = by_pid[pid], (study, running[0].number)
                        victim.send_signal(signal.SIGKILL)
                        break
    assert victim is not None, "no trial was ever running"
    outs = {p.pid: _finish(p) for p in procs}
    assert victim.returncode == -signal.SIGKILL
    assert all(p.returncode == 0 for p in procs if p is not victim), outs
    by_level, folds = _check_study(tracking_server, storage)
    study, number = killed
    trials = {t.number: t for t in optuna.load_study(study_name=study.study_name, storage=open_storage(storage)).trials}
    assert trials[number].state == TrialState.FAIL and "died" in trials[number].user_attrs["failed_reason"]
    retry = [t for t in trials.values() if t.user_attrs.get("retry_of") == number]
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE and retry[0].params == trials[number].params
    fold = study.study_name.rsplit("-", 1)[1]
    killed_runs = [
        r
        for r in by_level["trial"]
        if r.data.tags["reproai.outer_fold"] == fold and r.data.tags["reproai.trial"] == str(number)
    ]
    assert len(killed_runs) == 1 and killed_runs[0].info.status == "FAILED"


def test_parallel_workers_refuse_sqlite_storage_and_say_what_to_use(write_config, capsys):
    with pytest.raises(ConfigError, match="journal:optuna.journal"):
        check_parallel_storage(None, 2)
    check_parallel_storage(None, 1)
    assert main(["run", str(write_config(CONFIG)), "--workers", "2", "--quiet"]) == 2
    assert "postgresql://" in capsys.readouterr().err


@pytest.mark.slow
def test_workers_option_runs_local_workers_with_a_local_tracking_server(write_config, tmp_path, capsys):
    path = write_config(CONFIG.replace("n_trials = 4", "n_trials = 2"))
    journal = f"journal:{tmp_path / 'optuna.journal'}"
    assert main(["run", str(path), "--workers", "2", "--storage", journal, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "test roc_auc" in out and "tracked at sqlite:///" in out
    # the runs landed in the SQLite store behind the server, readable directly afterwards
    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    runs = client.search_runs([client.get_experiment_by_name("cluster").experiment_id], max_results=1000)
    assert {r.data.tags["reproai.level"] for r in runs} == {"study", "outer_fold", "trial", "fit", "phase"}
    assert all(r.info.status == "FINISHED" for r in runs if r.data.tags["reproai.level"] == "study")
    assert main(["status", "cluster", "--storage", journal]) == 0
    assert "2 of 2 outer folds done" in capsys.readouterr().out
