"""`reproai submit`: a study's workers as a Slurm job array, on a real Slurm (`.ci/start-slurm` starts a
one-node cluster on this machine), with a real PostgreSQL storage and a real MLflow server on loopback: the
quickstart on two workers; an array cancelled mid-search, then submitted again; tasks that reach their
time limit and are requeued. And the errors that name the fix: an SQLite storage or tracking store, no
submitit, no sbatch."""

import collections
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState

from reproai.cli import build_parser, main
from reproai.cluster._slurm import SlurmWorker, sbatch_script
from reproai.cluster._slurm_options import (
    SlurmOptions,
    check_cluster_storage,
    check_cluster_tracking,
    check_reachable,
    executor_parameters,
    exit_meaning,
    parse_time,
    slurm_extras,
    worker_argv,
)
from reproai.errors import ConfigError, ReproaiError
from tests.conftest import REPO, fold_studies, tiny_config_text
from tests.test_cluster import _postgres_database

QUICKSTART = REPO / "configs" / "quickstart.py"


def _config(name: str, n_trials: int, epochs: int) -> str:
    """A small study with a search: digits, small_cnn, 2 outer x 2 inner folds."""
    return (
        tiny_config_text(
            name=name, data="Data.digits(limit=300)", epochs=epochs, cv="CrossValidation(outer_folds=2, inner_folds=2)"
        )
        + f"""
experiment.model.head.dropout = hp.float(0.0, 0.5)
experiment.training.phases[1].lr = hp.float(1e-4, 1e-2, log=True)
experiment.search.n_trials = {n_trials}
experiment.search.pruner = 'none'
"""
    )


# ---------------------------------------------------------------------------------------------------------------
# On a real Slurm


def _slurm_missing() -> str | None:
    """Why Slurm cannot run jobs here, or None."""
    missing = [c for c in ("sbatch", "squeue", "scancel", "scontrol", "srun", "sinfo") if shutil.which(c) is None]
    if missing:
        return f"needs Slurm's commands ({', '.join(missing)} not on PATH; .ci/start-slurm installs and starts one)"
    try:
        states = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20).stdout.split()
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"needs a Slurm cluster that answers (sinfo: {e}; .ci/start-slurm starts one)"
    if not any(s.rstrip("*") in ("idle", "mixed", "allocated") for s in states):
        return f"needs a Slurm node that takes jobs (sinfo: {states or 'no answer'}; .ci/start-slurm starts one)"
    return None


@pytest.fixture
def slurm(monkeypatch):
    """A usable Slurm cluster (skip without one, fail under REPROAI_REQUIRE_SLURM); the ids of the jobs the test
    submits go into the yielded list, and any still queued at the end are cancelled."""
    reason = _slurm_missing()
    if reason:
        if os.environ.get("REPROAI_REQUIRE_SLURM"):
            pytest.fail(f"Slurm is required (REPROAI_REQUIRE_SLURM) but unusable: {reason}")
        pytest.skip(reason)
    # sbatch hands the submitting environment to the jobs: they import this checkout's reproai.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")])))
    jobs: list[str] = []
    yield jobs
    for job in jobs:
        subprocess.run(["scancel", job], check=False)
    for job in jobs:
        _wait_gone(job, timeout=60, cancel=False)


@pytest.fixture
def postgres():
    admin, name = _postgres_database()
    yield f"{os.environ.get('REPROAI_TEST_POSTGRES', 'postgresql://postgres@127.0.0.1:5432')}/{name}"
    admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.close()


def _submit(capsys, slurm_jobs, *args) -> str:
    """Run `reproai submit ...`; its job id."""
    assert main(["submit", *map(str, args)]) == 0
    out = capsys.readouterr().out
    job = re.search(r"submitted job (\d+)", out).group(1)
    slurm_jobs.append(job)
    assert "reproai status" in out and f"scancel {job}" in out
    return job


def _queued(job: str) -> list[str]:
    out = subprocess.run(["squeue", "-h", "-j", job, "-o", "%i %T"], capture_output=True, text=True).stdout
    return out.split("\n") if out.strip() else []


def _logs(folder, tail: int | None = 3000) -> str:
    """The tasks' logs, each cut to its last ``tail`` characters (for a failure message) or whole (None)."""
    return "\n".join(f"== {p.name}\n{p.read_text()[-tail if tail else 0 :]}" for p in sorted(folder.glob("*_log.*")))


def _wait_gone(job: str, timeout: float, *, cancel: bool = True, folder=None) -> None:
    """Wait until nothing of ``job`` is pending or running; past ``timeout``, cancel it and fail with its logs."""
    deadline = time.monotonic() + timeout
    while _queued(job):
        if time.monotonic() > deadline:
            if not cancel:
                return
            subprocess.run(["scancel", job], check=False)
            pytest.fail(f"job {job} still queued after {timeout:.0f} s:\n{_logs(folder) if folder else ''}")
        time.sleep(2)


def _task_records(job: str) -> list[dict[str, str]]:
    """``scontrol show job`` of each task of the array ``job``, as key=value dicts."""
    out = subprocess.run(["scontrol", "-o", "show", "job", job], capture_output=True, text=True).stdout
    return [dict(kv.split("=", 1) for kv in line.split() if "=" in kv) for line in out.splitlines() if line.strip()]


def _check_study(uri, storage, name, *, n_folds, n_trials, final=False):
    """Every invariant of a finished shared study: one finished study run with its headline once; per outer
    fold (and the final model's search, with ``final``) exactly ``n_trials`` finished (complete or pruned)
    trials with unique numbers, one trial run each, one refit; nothing left RUNNING, in the storage or in
    MLflow."""
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name(name).experiment_id], max_results=5000)
    by_level = collections.defaultdict(list)
    for r in runs:
        by_level[r.data.tags["reproai.level"]].append(r)
    assert len(by_level["study"]) == 1 and by_level["study"][0].info.status == "FINISHED"
    assert len(client.get_metric_history(by_level["study"][0].info.run_id, "test_roc_auc_mean")) == 1
    assert not [(r.data.tags["reproai.level"], r.info.run_id) for r in runs if r.info.status == "RUNNING"]
    folds = fold_studies(storage)
    assert sorted(folds) == [str(i) for i in range(n_folds)] + (["final"] if final else [])
    if final:  # the final model: one run of the final stage, registered once
        assert [r.data.tags["reproai.state"] for r in by_level["final"]] == ["complete"]
        version = client.get_model_version_by_alias(name, "final")
        assert version.run_id == by_level["final"][0].info.run_id
    for fold, study in folds.items():
        trials = study.get_trials(deepcopy=False)
        assert len({t.number for t in trials}) == len(trials)
        finished = sorted(t.number for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED))
        assert len(finished) == n_trials, (fold, [(t.number, t.state) for t in trials])
        assert any(t.state == TrialState.COMPLETE for t in trials)
        assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
        runs_done = collections.Counter(  # a pruned trial's run ends KILLED, tagged pruned
            int(r.data.tags["reproai.trial"])
            for r in by_level["trial"]
            if r.data.tags["reproai.outer_fold"] == fold
            and (r.info.status == "FINISHED" or r.data.tags.get("reproai.state") == "pruned")
        )
        assert sorted(runs_done) == finished and set(runs_done.values()) == {1}  # nothing computed twice
        refits = [
            r
            for r in by_level["fit"]
            if r.data.tags.get("reproai.refit") == "true" and r.data.tags["reproai.outer_fold"] == fold
        ]
        assert [r.info.status for r in refits] == ["FINISHED"]
    return by_level, folds


@pytest.mark.slow
def test_quickstart_on_two_slurm_workers(slurm, postgres, tracking_server, tmp_path, capsys):
    # configs/quickstart.py as it is but for 3 trials per outer fold instead of 6, to save a minute
    job = _submit(
        capsys, slurm, QUICKSTART, "--set", "search.n_trials=3", "--workers", 2, "--cpus-per-worker", 1,
        "--time", 20, "--storage", postgres, "--tracking-uri", tracking_server,
    )  # fmt: skip
    folder = tmp_path / "reproai-slurm" / job
    assert (folder / f"{job}_submission.sh").is_file() and (folder / "workers.sbatch").is_file()
    _wait_gone(job, timeout=600, folder=folder)
    tasks = _task_records(job)
    assert [t["JobState"] for t in tasks] == ["COMPLETED", "COMPLETED"], _logs(folder)
    _, folds = _check_study(tracking_server, postgres, "quickstart", n_folds=3, n_trials=3, final=True)
    workers = {t.user_attrs["worker"] for s in folds.values() for t in s.trials if t.state == TrialState.COMPLETE}
    assert len(workers) == 2, workers  # both tasks ran trials
    assert main(["status", "quickstart", "--storage", postgres, "--tracking-uri", tracking_server]) == 0
    assert "3 of 3 outer folds done" in capsys.readouterr().out


@pytest.mark.slow
def test_an_array_cancelled_mid_search_resumes_when_submitted_again(
    slurm, postgres, tracking_server, tmp_path, capsys, write_config
):
    path = write_config(_config("slurm-cancel", n_trials=3, epochs=2))
    job = _submit(
        capsys, slurm, path, "--workers", 2, "--cpus-per-worker", 1, "--time", 20,
        "--storage", postgres, "--tracking-uri", tracking_server,
    )  # fmt: skip
    folder = tmp_path / "reproai-slurm" / job
    deadline = time.monotonic() + 300
    while True:  # cancel once a trial is complete and another one is running
        trials = [t for s in fold_studies(postgres).values() for t in s.get_trials(deepcopy=False)]
        states = {t.state for t in trials}
        if TrialState.COMPLETE in states and TrialState.RUNNING in states:
            break
        assert _queued(job) and time.monotonic() < deadline, f"no trial complete and one running:\n{_logs(folder)}"
        time.sleep(1)
    subprocess.run(["scancel", job], check=True)
    _wait_gone(job, timeout=120, folder=folder)

    # scancel sent SIGTERM: the workers stopped cleanly, leaving nothing RUNNING
    done = {
        (fold, t.number): (t.state, t.params, t.value, t.datetime_complete)
        for fold, s in fold_studies(postgres).items()
        for t in s.get_trials(deepcopy=False)
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
    }
    trials = [t for s in fold_studies(postgres).values() for t in s.get_trials(deepcopy=False)]
    assert not [t.number for t in trials if t.state == TrialState.RUNNING]
    client = MlflowClient(tracking_server)
    runs = client.search_runs([client.get_experiment_by_name("slurm-cancel").experiment_id], max_results=5000)
    assert not [r.data.tags["reproai.level"] for r in runs if r.info.status == "RUNNING"]
    assert "terminated (SIGTERM)" in _logs(folder, tail=None)

    # submitted again, here with the plain sbatch script kept beside the logs: the study completes
    out = subprocess.run(["sbatch", str(folder / "workers.sbatch")], capture_output=True, text=True, check=True).stdout
    again = re.search(r"Submitted batch job (\d+)", out).group(1)
    slurm.append(again)
    _wait_gone(again, timeout=600, folder=folder)
    assert [t["JobState"] for t in _task_records(again)] == ["COMPLETED", "COMPLETED"], _logs(folder)
    _, folds = _check_study(tracking_server, postgres, "slurm-cancel", n_folds=2, n_trials=3)
    after = {(fold, t.number): t for fold, s in folds.items() for t in s.trials}
    for key, (state, params, value, completed) in done.items():  # nothing finished was recomputed
        t = after[key]
        assert (t.state, t.params, t.value, t.datetime_complete) == (state, params, value, completed)


@pytest.mark.slow
def test_tasks_that_reach_their_time_limit_are_requeued_and_the_study_completes(
    slurm, postgres, tracking_server, tmp_path, capsys, write_config
):
    # Slurm checks time limits every 30 s: with --time 1 and --signal-delay 20 it signals a task 10 to 40 s after
    # it starts. The study must outlast that: with 20 trials per outer fold its outer folds take about 36 s after
    # the workers start on a 2-core CPU (with 8 trials, 22 s: a race with the signal). The task stops reproai
    # cleanly, requeues itself, and resumes the study. Once each task has come back, its limit is raised to 10
    # minutes, so that the rest of the study runs in one more allocation rather than in many short ones.
    path = write_config(_config("slurm-timeout", n_trials=20, epochs=3))
    job = _submit(
        capsys, slurm, path, "--workers", 2, "--cpus-per-worker", 1, "--time", 1, "--signal-delay", 20,
        "--storage", postgres, "--tracking-uri", tracking_server,
    )  # fmt: skip
    folder = tmp_path / "reproai-slurm" / job
    raised: set[str] = set()
    deadline = time.monotonic() + 600
    while _queued(job) and time.monotonic() < deadline:
        for t in _task_records(job):
            task = f"{t['ArrayJobId']}_{t['ArrayTaskId']}"
            if int(t["Restarts"]) >= 1 and task not in raised:
                subprocess.run(["scontrol", "update", f"JobId={task}", "TimeLimit=10"], check=True)
                raised.add(task)
        time.sleep(1)
    _wait_gone(job, timeout=1, folder=folder)
    tasks = _task_records(job)
    logs, whole = _logs(folder), _logs(folder, tail=None)  # the progress after a requeue pushes its lines up
    assert [t["JobState"] for t in tasks] == ["COMPLETED", "COMPLETED"], logs
    assert all(int(t["Restarts"]) >= 1 for t in tasks), logs
    for i in range(2):  # each task was asked to stop before its time limit, stopped its worker, and was requeued
        assert f"Requeued job {job}_{i}" in whole and f"worker {i} stopped (status" in whole, logs
    _check_study(tracking_server, postgres, "slurm-timeout", n_folds=2, n_trials=20)


# ---------------------------------------------------------------------------------------------------------------
# Without Slurm: the options, the worker's command, the errors


def test_an_sqlite_storage_is_refused_with_the_fix(write_config, capsys):
    with pytest.raises(ConfigError, match=r"--storage sqlite:///optuna.db: SQLite cannot be shared by Slurm nodes"):
        check_cluster_storage("sqlite:///optuna.db")
    with pytest.raises(ConfigError, match="no --storage .*postgresql://.*journal:/shared/"):
        check_cluster_storage(None)
    assert check_cluster_storage("journal:/shared/optuna.journal") == "journal:/shared/optuna.journal"
    path = write_config(_config("x", n_trials=2, epochs=1))
    assert main(["submit", str(path), "--workers", "2", "--time", "10", "--tracking-uri", "http://h:5000"]) == 2
    err = capsys.readouterr().err
    assert "SQLite cannot be shared by Slurm nodes" in err and "postgresql://" in err and "journal:" in err


def test_an_sqlite_or_file_tracking_store_is_refused_with_the_fix(monkeypatch):
    with pytest.raises(ConfigError, match=r"MLFLOW_TRACKING_URI=sqlite:.*--tracking-uri http://HOST:5000"):
        check_cluster_tracking(None)  # the tests' own MLFLOW_TRACKING_URI is an SQLite file
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    with pytest.raises(ConfigError, match=r"no --tracking-uri \(the default is sqlite:///mlflow.db\)"):
        check_cluster_tracking(None)
    for uri in ("file:///shared/mlruns", "mlruns", "/shared/mlruns"):
        with pytest.raises(ConfigError, match="cannot be MLflow's store for workers on Slurm nodes"):
            check_cluster_tracking(uri)
    for uri in ("http://10.0.0.5:5000", "https://mlflow.example.org", "postgresql://me@db/mlflow", "databricks"):
        assert check_cluster_tracking(uri) == uri


def test_missing_submitit_or_sbatch_names_the_install(write_config, monkeypatch, tmp_path):
    path = write_config(_config("x", n_trials=2, epochs=1))
    options = SlurmOptions(time="10")
    run = dict(workers=2, slurm=options, storage="postgresql://u@h/db", tracking_uri="http://h:5000")
    from reproai.cluster._slurm import submit

    with monkeypatch.context() as m:
        m.setitem(sys.modules, "submitit", None)  # import submitit raises ImportError
        with pytest.raises(ReproaiError, match=r'needs submitit.*pip install "reproai\[slurm\]"'):
            submit(path, **run)
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(ReproaiError, match=r"sbatch, srun, scontrol is not on PATH.*apt-get install slurm-client"):
        submit(path, **run)


def test_slurm_options_become_submitit_parameters():
    times = ("90", "1:30", "24:00:00", "2-00", "1-01:30", "0:0:59")
    assert [parse_time(t) for t in times] == [90, 2, 1440, 2880, 1530, 1]
    for bad in ("", "1h", "0", "1:2:3:4"):
        with pytest.raises(ConfigError, match="--time"):
            parse_time(bad)
    options = SlurmOptions(
        time="2:00:00", partition="gpu", gpus_per_worker=1, cpus_per_worker=8, mem="32G", account="lab",
        extra=["qos=high", "--constraint=a100", "exclusive", "job_name=mine"],
    )  # fmt: skip
    params = executor_parameters("pets", 4, options)
    assert params == {
        "job_name": "mine",
        "time": 120,
        "signal_delay_s": 120,
        "array_parallelism": 4,
        "additional_parameters": {"requeue": True, "qos": "high", "constraint": "a100", "exclusive": True},
        "partition": "gpu",
        "cpus_per_task": 8,
        "gpus_per_node": 1,
        "mem": "32G",
        "account": "lab",
    }
    with pytest.raises(ConfigError, match="--slurm 'time=5': use --time"):
        slurm_extras(["time=5"])
    with pytest.raises(ConfigError, match="'array=0-3'.*use --workers"):
        slurm_extras(["array=0-3"])
    with pytest.raises(ConfigError, match="--signal-delay 120 s must be .* shorter than --time 1"):
        executor_parameters("pets", 2, SlurmOptions(time="1"))
    with pytest.raises(ConfigError, match="--workers 0"):
        executor_parameters("pets", 0, options)


def test_the_worker_runs_what_reproai_run_takes_and_the_plain_script_the_same(tmp_path):
    argv = worker_argv("c.py", ["a.b=1"], storage="postgresql://u@h/db", tracking_uri="http://h:5000")
    args = build_parser().parse_args(argv)
    assert (args.command, args.config, args.overrides, args.storage, args.tracking_uri) == (
        "run", "c.py", ["a.b=1"], "postgresql://u@h/db", "http://h:5000",
    )  # fmt: skip
    assert not args.quiet and args.no_summary and args.workers == 1
    params = executor_parameters("pets", 3, SlurmOptions(time="60", cpus_per_worker=4, extra=["qos=high"]))
    text = sbatch_script(argv, workers=3, params=params, folder=tmp_path, cwd="/work dir", python="/venv/bin/python")
    for line in (
        "#SBATCH --array=0-2",
        "#SBATCH --time=60",
        "#SBATCH --cpus-per-task=4",
        "#SBATCH --qos=high",
        "#SBATCH --requeue",
        "#SBATCH --signal=B:USR2@120",
        "cd '/work dir'",
        "/venv/bin/python -m reproai run c.py --set=a.b=1 --tracking-uri http://h:5000 --storage "
        "postgresql://u@h/db --no-summary &",
        'scontrol requeue "${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"',
    ):
        assert line in [s.strip() for s in text.splitlines()], line
    assert subprocess.run(["bash", "-n"], input=text, text=True).returncode == 0


def test_the_worker_reports_a_failed_run(tmp_path):
    worker = SlurmWorker(["space", "missing.py"], cwd=str(tmp_path))
    with pytest.raises(ReproaiError, match="reproai run exited with status 2"):
        worker(0)


def test_the_plain_script_stops_the_worker_and_requeues_its_task_on_the_signal(tmp_path):
    # The script as bash runs it under sbatch, with a stand-in worker (a python that waits for SIGTERM) and a
    # stand-in scontrol that records its arguments; the batch shell gets USR2 as --signal=B:USR2 sends it.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/scontrol.args\n')
    (bin_dir / "python").write_text(
        f"#!/bin/sh\ntrap 'echo SIGTERM >> {tmp_path}/worker.log; exit 143' TERM\n"
        f"echo started > {tmp_path}/worker.log\nwhile :; do sleep 0.1; done\n"
    )
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    params = executor_parameters("x", 2, SlurmOptions(time="60"))
    argv = worker_argv("c.py", [], storage="journal:j", tracking_uri="http://h:1")
    text = sbatch_script(argv, workers=2, params=params, folder=tmp_path, cwd=str(tmp_path), python=f"{bin_dir}/python")
    script = tmp_path / "workers.sbatch"
    script.write_text(text)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    env.update(SLURM_ARRAY_JOB_ID="77", SLURM_ARRAY_TASK_ID="1", SLURM_CPUS_PER_TASK="3")
    proc = subprocess.Popen(["bash", str(script)], env=env)
    deadline = time.monotonic() + 20
    while not (tmp_path / "worker.log").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGUSR2)
    assert proc.wait(timeout=20) == 0
    assert (tmp_path / "worker.log").read_text().split() == ["started", "SIGTERM"]
    assert (tmp_path / "scontrol.args").read_text().split() == ["requeue", "77_1"]


def test_an_unreachable_storage_or_tracking_server_is_refused_before_submitting(tmp_path):
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    journal = f"journal:{tmp_path / 'optuna.journal'}"
    with pytest.raises(ConfigError, match=rf"Cannot reach the MLflow tracking server .*127.0.0.1:{port}.*--no-check"):
        check_reachable(journal, f"http://127.0.0.1:{port}")
    with pytest.raises(
        ConfigError, match=r"(?s)Cannot open the Optuna storage 'sqlite:////no/such/folder/x.db'.*--no-check"
    ):
        check_reachable("sqlite:////no/such/folder/x.db", "databricks")


def test_the_worker_says_what_its_exit_status_means():
    assert exit_meaning(143) == "stopped by SIGTERM, e.g. scancel"
    assert exit_meaning(2).startswith("an error in the config")
    assert exit_meaning(1).startswith("an unexpected error")
    assert exit_meaning(-9).startswith("killed by SIGKILL")
