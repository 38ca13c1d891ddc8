"""``reproai submit``: a study's workers as a Slurm job array, submitted through submitit.

Each array task is one worker that runs exactly ``reproai run CONFIG --storage URL --tracking-uri URI``
(the arguments a local ``--workers`` worker gets), so what reproai guarantees for a run holds on the
cluster: the workers share the study through the Optuna storage and the MLflow tracking server, and a
worker that is stopped, killed or requeued leaves a study that the next one resumes.

How a task stops before its time limit and comes back. submitit asks Slurm for a signal (USR2)
``signal_delay_s`` seconds before the limit. In the task, submitit's handler catches it, calls the
callable's ``checkpoint()``, then requeues the task (``scontrol requeue``) with the call that
``checkpoint()`` returned; a preempted task is requeued the same way. The worker runs as a child process,
``python -m reproai run ...``, rather than as a call inside the submitit process:

- the program that runs is then ``reproai run`` itself, with its own signal handlers: on SIGTERM it stops
  at a safe point (the running trial failed, its runs KILLED, exit status 143), resumably;
- submitit's process only logs SIGTERM, and Slurm sends USR2 to every process of the step: the child
  ignores USR2, and ``checkpoint()`` sends it SIGTERM and waits for it to stop before the requeue. On
  ``scancel``, Slurm sends SIGTERM to every process, so the child stops cleanly the same way;
- nothing needs pickling at a checkpoint: the study's state is in the storage and the tracking server,
  so ``checkpoint()`` returns the same command, which resumes.

For those who prefer ``sbatch``, a plain script that does the same without submitit (``workers.sbatch``:
the batch shell gets the signal, stops reproai with SIGTERM and requeues the task) is written beside the
logs and the script that submitit submitted.
"""

from __future__ import annotations

import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reproai._console import say
from reproai.errors import ConfigError, ReproaiError

__all__ = [
    "SlurmOptions",
    "Submission",
    "SlurmWorker",
    "submit",
    "check_cluster_storage",
    "check_cluster_tracking",
    "check_reachable",
    "exit_meaning",
    "parse_time",
    "slurm_extras",
    "executor_parameters",
    "worker_argv",
    "worker_env",
    "sbatch_script",
]

_INSTALL_SUBMITIT = 'pip install "reproai[slurm]" (or pip install submitit)'

# sbatch options that reproai sets itself, or that have an option of their own: --slurm refuses them.
_RESERVED = {
    "array": "reproai makes one array task per worker; use --workers",
    "ntasks": "each worker is one task; use --workers",
    "ntasks-per-node": "each worker is one task; use --workers",
    "nodes": "each worker is one task on one node; use --workers",
    "signal": "reproai asks for the signal before the time limit; use --signal-delay",
    "requeue": "reproai makes every task requeueable",
    "no-requeue": "a task must be requeueable to come back after its time limit",
    "output": "the logs go to --log-dir",
    "error": "the logs go to --log-dir",
    "open-mode": "the logs of a requeued task are appended to",
    "time": "use --time",
    "partition": "use --partition",
    "cpus-per-task": "use --cpus-per-worker",
    "gpus-per-node": "use --gpus-per-worker",
    "mem": "use --mem",
    "account": "use --account",
}


@dataclass(frozen=True)
class SlurmOptions:
    """What each worker (one array task) asks Slurm for. ``time`` in Slurm's formats (``MM``,
    ``HH:MM:SS``, ``D-HH:MM``, ...); ``extra``: further sbatch options as ``KEY=VALUE`` or ``KEY``."""

    time: str
    partition: str | None = None
    gpus_per_worker: int | None = None
    cpus_per_worker: int | None = None
    mem: str | None = None
    account: str | None = None
    extra: Sequence[str] = ()
    signal_delay_s: int = 120
    max_requeues: int = 20
    log_dir: str | Path = "reproai-slurm"


@dataclass(frozen=True)
class Submission:
    """A submitted job array: its id, where its logs and scripts are, and how to watch it."""

    job_id: str
    workers: int
    folder: Path
    submitted_script: Path
    sbatch_script: Path
    status_command: str


def check_cluster_storage(storage: str | None) -> str:
    """The Optuna storage URL, if the workers on several nodes can share it; else a ConfigError with the fix."""
    if storage is None or storage.startswith("sqlite"):
        given = f"--storage {storage}" if storage else "no --storage (the default is sqlite:///optuna.db)"
        raise ConfigError(
            f"{given}: SQLite cannot be shared by Slurm nodes (it takes one writer at a time, and its file lock "
            "is unreliable on network file systems). Use --storage postgresql://user@host/db (pip install "
            '"reproai[postgres]"), or --storage journal:/shared/path/optuna.journal on a file system that every '
            "node mounts."
        )
    return storage


def check_cluster_tracking(tracking_uri: str | None, environ: Mapping[str, str] | None = None) -> str:
    """The MLflow tracking URI (``tracking_uri``, else ``$MLFLOW_TRACKING_URI``), if the workers on several
    nodes can share it: a tracking server or a database server. A ConfigError with the fix otherwise."""
    env = os.environ if environ is None else environ
    if tracking_uri:
        uri, given = tracking_uri, f"--tracking-uri {tracking_uri}"
    elif env.get("MLFLOW_TRACKING_URI"):
        uri = env["MLFLOW_TRACKING_URI"]
        given = f"MLFLOW_TRACKING_URI={uri} (no --tracking-uri)"
    else:
        uri, given = "sqlite:///mlflow.db", "no --tracking-uri (the default is sqlite:///mlflow.db)"
    if "://" in uri:
        scheme = uri.split("://", 1)[0].split("+", 1)[0].lower()
    else:
        scheme = "file" if uri.startswith("file:") or uri not in ("databricks", "databricks-uc") else uri
    if scheme in ("sqlite", "file"):
        raise ConfigError(
            f"{given}: an SQLite file or a local folder cannot be MLflow's store for workers on Slurm nodes (each "
            "node would write its own copy, or contend for one file's lock). Start an MLflow tracking server that "
            "the nodes can reach (docs/cluster.md) and pass --tracking-uri http://HOST:5000, or set "
            "MLFLOW_TRACKING_URI to it."
        )
    return uri


def check_reachable(storage: str, tracking_uri: str, timeout_s: float = 10) -> None:
    """Raise ConfigError unless this machine can open the Optuna storage and, for an ``http(s)`` URI, reach
    the MLflow tracking server (its ``/health``): a wrong URL then fails now, not after the queue wait."""
    import urllib.error
    import urllib.request

    from reproai.runtime._storage import open_storage

    hint = " If only the cluster's nodes can reach it, submit with --no-check."
    try:
        open_storage(storage)
    except ConfigError as e:
        raise ConfigError(f"{e}{hint}") from e
    if tracking_uri.startswith(("http://", "https://")):
        url = tracking_uri.rstrip("/") + "/health"
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as response:
                response.read()
        except urllib.error.HTTPError as e:
            if e.code not in (401, 403):  # a server that wants credentials is up; the workers have them
                raise ConfigError(
                    f"--tracking-uri {tracking_uri}: {url} answered HTTP {e.code}; is it an MLflow tracking "
                    f"server?{hint}"
                ) from e
        except (OSError, ValueError) as e:
            raise ConfigError(
                f"Cannot reach the MLflow tracking server at --tracking-uri {tracking_uri} ({url}: {e}). Start it "
                f"(docs/cluster.md) or correct the URI.{hint}"
            ) from e


def exit_meaning(code: int) -> str:
    """What an exit status of ``reproai run`` means, in words."""
    if code in (143, -signal.SIGTERM):
        return "stopped by SIGTERM, e.g. scancel"
    if code in (130, -signal.SIGINT):
        return "interrupted"
    if code in (137, -signal.SIGKILL):
        return "killed by SIGKILL, e.g. out of memory"
    if code == 2:
        return "an error in the config, the data or a server: its message is above"
    if code < 0:
        return f"killed by signal {-code}"
    return "an unexpected error: its traceback is above"


def parse_time(value: str) -> int:
    """Minutes (rounded up) in a Slurm time limit: ``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH``, ``D-HH:MM``
    or ``D-HH:MM:SS``."""
    m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", value.strip())
    if m is None:
        raise ConfigError(
            f"--time {value!r} is not a Slurm time limit; give minutes (90), HH:MM:SS (24:00:00) or D-HH:MM (2-00:00)."
        )
    days, a, b, c = (int(x) if x is not None else None for x in m.groups())
    assert a is not None  # the pattern requires it
    if days is not None:
        hours, minutes, seconds = a, b or 0, c or 0
    elif c is not None:
        hours, minutes, seconds = a, b or 0, c
    else:
        hours, minutes, seconds = 0, a, b or 0
    total = (days or 0) * 24 * 60 + hours * 60 + minutes + math.ceil(seconds / 60)
    if total < 1:
        raise ConfigError(f"--time {value!r} must be at least one minute.")
    return total


def slurm_extras(extra: Sequence[str]) -> dict[str, str | bool]:
    """Further sbatch options from ``--slurm KEY=VALUE`` (or ``--slurm KEY`` for a flag), by option name."""
    out: dict[str, str | bool] = {}
    for item in extra:
        key, sep, value = item.partition("=")
        key = key.strip().lstrip("-").replace("_", "-").lower()
        if not key:
            raise ConfigError(f"--slurm {item!r}: expected KEY=VALUE (e.g. --slurm qos=high) or KEY (a flag).")
        if key in _RESERVED:
            raise ConfigError(f"--slurm {item!r}: {_RESERVED[key]}.")
        out[key] = value if sep else True
    return out


def executor_parameters(name: str, workers: int, options: SlurmOptions) -> dict[str, Any]:
    """The parameters of submitit's ``SlurmExecutor.update_parameters`` for ``workers`` workers."""
    if workers < 1:
        raise ConfigError(f"--workers {workers}: at least one worker is needed.")
    minutes = parse_time(options.time)
    if not 0 < options.signal_delay_s < minutes * 60:
        raise ConfigError(
            f"--signal-delay {options.signal_delay_s} s must be positive and shorter than --time {options.time} "
            f"({minutes} min): it is how long before the time limit a worker is asked to stop."
        )
    if options.max_requeues < 0:
        raise ConfigError(f"--max-requeues {options.max_requeues} must be 0 or more.")
    extra = slurm_extras(options.extra)
    job_name = extra.pop("job-name", f"reproai-{name}")
    params: dict[str, Any] = {
        "job_name": str(job_name),
        "time": minutes,
        "signal_delay_s": options.signal_delay_s,
        "array_parallelism": workers,
        "additional_parameters": {"requeue": True, **extra},
    }
    for key, value in (
        ("partition", options.partition),
        ("cpus_per_task", options.cpus_per_worker),
        ("gpus_per_node", options.gpus_per_worker),  # one task per node: the node's GPUs are the worker's
        ("mem", options.mem),
        ("account", options.account),
    ):
        if value is not None:
            params[key] = value
    return params


def worker_argv(config: str | Path, overrides: Sequence[str], *, storage: str, tracking_uri: str) -> list[str]:
    """The arguments of ``reproai`` for one worker: the same run as ``reproai run --workers`` starts, with its
    progress bars (in a log file they update every 30 s)."""
    return [
        "run",
        str(config),
        *[f"--set={o}" for o in overrides],
        "--tracking-uri",
        tracking_uri,
        "--storage",
        storage,
        "--no-summary",  # a worker may end before the others finish: `reproai analyze` gives the headline
    ]


def worker_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The worker's environment: PyTorch's threads are the CPUs Slurm gave the task, when it says."""
    env = dict(environ)
    if env.get("SLURM_CPUS_PER_TASK"):
        env["OMP_NUM_THREADS"] = env["SLURM_CPUS_PER_TASK"]
    return env


class SlurmWorker:
    """The callable each array task runs: ``python -m reproai <argv>`` in ``cwd``, stopped with SIGTERM and
    requeued (by submitit, through :meth:`checkpoint`) when Slurm signals the coming time limit."""

    def __init__(self, argv: Sequence[str], *, cwd: str, preempt_signal: str = "USR2", stop_timeout_s: float = 60):
        self.argv = list(argv)
        self.cwd = cwd
        self.preempt_signal = preempt_signal
        self.stop_timeout_s = stop_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None

    def _ignore_preempt_signal(self) -> None:  # in the child, before exec: ignored signals stay ignored
        sig = getattr(signal, f"SIG{self.preempt_signal}", None)
        if sig is not None and sig not in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)

    def __call__(self, index: int) -> int:
        """Run the worker to its end; its exit status (0), or a ReproaiError if it failed or was stopped."""
        cmd = [sys.executable, "-m", "reproai", *self.argv]
        say(f"worker {index} of a Slurm array: {shlex.join(cmd)}")
        self._proc = subprocess.Popen(
            cmd, cwd=self.cwd, env=worker_env(os.environ), preexec_fn=self._ignore_preempt_signal
        )
        # poll() rather than wait(): submitit's handler calls checkpoint() in this thread, and a handler that
        # interrupts wait() could not reap the child (Popen's lock is held by the interrupted wait).
        while (code := self._proc.poll()) is None:
            time.sleep(0.5)
        if code != 0:
            raise ReproaiError(
                f"reproai run exited with status {code} ({exit_meaning(code)}); finished work is kept, and "
                "submitting the same command again resumes the study."
            )
        return code

    def _stop(self) -> int | None:
        """SIGTERM the worker and wait for it to stop (SIGKILL after ``stop_timeout_s``); its exit status."""
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return None if proc is None else proc.returncode
        proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout_s
        while True:
            try:  # waitpid directly: Popen's own lock may be held by the poll() this handler interrupted
                pid, status = os.waitpid(proc.pid, os.WNOHANG)
            except ChildProcessError:
                return proc.returncode
            if pid:
                proc.returncode = os.waitstatus_to_exitcode(status)
                return proc.returncode
            if time.monotonic() > deadline:
                proc.kill()  # the next worker fails its trial as that of a dead worker
                deadline = math.inf
            time.sleep(0.2)

    def checkpoint(self, index: int) -> Any:
        """Called by submitit on the pre-timeout signal or preemption: stop the worker, and return the same
        call to requeue (the study resumes from its storage); None, so no requeue, if it had finished."""
        from submitit.helpers import DelayedSubmission

        code = self._stop()
        if code == 0:
            return None  # it had finished the study: nothing to requeue
        say(f"worker {index} stopped (status {code}) before the time limit or on preemption; requeuing it")
        again = SlurmWorker(
            self.argv, cwd=self.cwd, preempt_signal=self.preempt_signal, stop_timeout_s=self.stop_timeout_s
        )
        return DelayedSubmission(again, index)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_proc": None}


def sbatch_script(
    argv: Sequence[str], *, workers: int, params: Mapping[str, Any], folder: Path, cwd: str, python: str
) -> str:
    """A plain sbatch script for the same workers, without submitit: ``sbatch`` it to submit them again."""
    flags: dict[str, Any] = {
        "job-name": params["job_name"],
        "array": f"0-{workers - 1}",
        "time": params["time"],
        "output": str(folder / "%A_%a_log.out"),
        "error": str(folder / "%A_%a_log.err"),
        "open-mode": "append",
        "signal": f"B:USR2@{params['signal_delay_s']}",  # to the batch shell only: it stops reproai
    }
    for key in ("partition", "cpus_per_task", "gpus_per_node", "mem", "account"):
        if key in params:
            flags[key.replace("_", "-")] = params[key]
    flags.update(params.get("additional_parameters", {}))
    lines = ["#!/bin/bash", f"# The {workers} workers of `reproai submit`, as a plain sbatch script (no submitit)."]
    for key, value in flags.items():
        lines.append(f"#SBATCH --{key}" if value is True else f"#SBATCH --{key}={shlex.quote(str(value))}")
    run = shlex.join([python, "-m", "reproai", *argv])
    lines += [
        "",
        f"cd {shlex.quote(cwd)}",
        'if [[ -n "${SLURM_CPUS_PER_TASK:-}" ]]; then export OMP_NUM_THREADS=$SLURM_CPUS_PER_TASK; fi',
        "",
        f"# {params['signal_delay_s']} s before the time limit: stop reproai cleanly (SIGTERM), then requeue",
        "# this task, which resumes the study. scancel sends SIGTERM to reproai directly.",
        "requeue() {",
        '    kill -TERM "$worker"',
        '    wait "$worker"',
        '    scontrol requeue "${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"',
        "    exit 0",
        "}",
        "trap requeue USR2",
        f"{run} &",
        "worker=$!",
        'wait "$worker"',
        "",
    ]
    return "\n".join(lines)


def _slurm_executor(folder: Path, max_requeues: int) -> Any:
    try:
        import submitit
    except ImportError as e:
        raise ReproaiError(f"reproai submit needs submitit, which is not installed: {_INSTALL_SUBMITIT}.") from e
    missing = [cmd for cmd in ("sbatch", "srun", "scontrol") if shutil.which(cmd) is None]
    if missing:
        raise ReproaiError(
            f"reproai submit needs Slurm's commands, but {', '.join(missing)} is not on PATH: run it on a machine "
            "of the cluster (a login node), or install Slurm's client (Debian: apt-get install slurm-client; "
            "a one-node test cluster: .ci/start-slurm)."
        )
    return submitit.SlurmExecutor(folder=folder, max_num_timeout=max_requeues)


def submit(
    config: str | Path,
    *,
    workers: int,
    slurm: SlurmOptions,
    overrides: Sequence[str] = (),
    storage: str | None = None,
    tracking_uri: str | None = None,
    check: bool = True,
) -> Submission:
    """Submit ``workers`` workers on the study of ``config`` as one Slurm job array; return without waiting.

    Raises ConfigError for options the nodes cannot work with (an SQLite storage or tracking store, a bad
    time limit or sbatch option) and for a bad config, and ReproaiError when submitit or Slurm's commands
    are missing or sbatch refuses the job. With ``check``, a ConfigError too when this machine cannot open
    the storage or reach the tracking server (:func:`check_reachable`). Submitting the same command again
    resumes the study.
    """
    from reproai.config._loader import load_config

    storage = check_cluster_storage(storage)
    uri = check_cluster_tracking(tracking_uri)
    loaded = load_config(config, overrides)  # a bad config fails here, not after hours in the queue
    name = loaded.experiment.name
    params = executor_parameters(name, workers, slurm)
    base = Path(slurm.log_dir).absolute()
    executor = _slurm_executor(base / ("%A" if workers > 1 else "%j"), slurm.max_requeues)
    executor.update_parameters(**params)
    if check:
        check_reachable(storage, uri)
    from submitit import JobEnvironment
    from submitit.core.utils import FailedJobError, FailedSubmissionError

    argv = worker_argv(config, overrides, storage=storage, tracking_uri=uri)
    cwd = os.getcwd()
    stop_timeout = max(10, slurm.signal_delay_s - 30)  # leave time for the requeue before Slurm's kill
    worker = SlurmWorker(argv, cwd=cwd, preempt_signal=JobEnvironment.USR_SIG, stop_timeout_s=stop_timeout)
    try:
        jobs = executor.map_array(worker, range(workers))
    except (FailedJobError, FailedSubmissionError) as e:
        raise ReproaiError(f"sbatch refused the job array: {str(e).strip()}") from e
    job_id = jobs[0].job_id.split("_")[0]
    folder = jobs[0].paths.folder
    script = folder / "workers.sbatch"
    text = sbatch_script(argv, workers=workers, params=params, folder=folder, cwd=cwd, python=sys.executable)
    script.write_text(text)
    status = shlex.join(["reproai", "status", name, "--storage", storage, "--tracking-uri", uri])
    return Submission(job_id, workers, folder, jobs[0].paths.submission_file, script, status)
