"""The options and checks of ``reproai submit``: what each worker asks Slurm for, the storage and tracking
store the nodes can share, a time limit and further sbatch options turned into submitit's parameters, and the
command and environment of each worker. Nothing here needs submitit or Slurm: :mod:`reproai.cluster._slurm`
submits with them."""

from __future__ import annotations

import math
import os
import re
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reproai.errors import ConfigError

__all__ = [
    "SlurmOptions",
    "Submission",
    "check_cluster_storage",
    "check_cluster_tracking",
    "check_reachable",
    "exit_meaning",
    "parse_time",
    "slurm_extras",
    "executor_parameters",
    "worker_argv",
    "worker_env",
]

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
