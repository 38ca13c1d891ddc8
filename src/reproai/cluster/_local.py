"""Local parallelism: N worker processes on one study, and a local MLflow tracking server for them.

Workers coordinate through the Optuna storage (see :mod:`reproai.runtime._claims`); this module only
starts and stops processes. SQLite takes one writer at a time, so several workers need a journal file
or a database server for Optuna, and an MLflow tracking server in front of an SQLite tracking store.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from reproai._console import say
from reproai.errors import ConfigError, TrackingError

if TYPE_CHECKING:
    from reproai.config._loader import LoadedConfig

__all__ = ["check_parallel_storage", "local_tracking_server", "run_workers", "run_local_study"]


def check_parallel_storage(storage: str | None, workers: int) -> None:
    """Refuse an Optuna storage that is not safe for ``workers`` parallel writers, saying what to use."""
    if workers > 1 and (storage is None or storage.startswith("sqlite")):
        raise ConfigError(
            f"--workers {workers} needs an Optuna storage that takes parallel writers, but got "
            f"--storage {storage or 'sqlite:///optuna.db (the default)'}: SQLite locks the whole file, and Optuna's "
            "docs advise against it for parallel optimisation. Use --storage journal:optuna.journal (one machine, "
            "or a shared file system) or --storage postgresql://user@host/db."
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def local_tracking_server(
    backend_uri: str,
    artifact_root: str | Path = "mlruns",
    *,
    port: int | None = None,
    workers: int = 2,
    timeout_s: float = 120.0,
) -> Iterator[str]:
    """An ``mlflow server`` on 127.0.0.1 (never a public interface) in front of ``backend_uri``, while the
    block runs; yields its URI. Clients write artifacts to ``artifact_root`` directly. ``port``: a free
    one by default."""
    port = port or _free_port()
    root = Path(artifact_root).resolve().as_uri()
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        backend_uri,
        "--default-artifact-root",
        root,
        "--no-serve-artifacts",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    stderr = proc.stderr
    assert stderr is not None  # stderr=PIPE
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            if proc.poll() is not None:
                raise TrackingError(
                    f"The local MLflow tracking server for {backend_uri!r} exited at start: "
                    f"{stderr.read().decode(errors='replace')[-2000:]}"
                )
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TrackingError(
                    f"The local MLflow tracking server on {uri} did not answer within {timeout_s:.0f} s."
                )
            time.sleep(0.5)
        yield uri
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        stderr.close()


def run_workers(argv: Sequence[str], workers: int) -> int:
    """Run ``reproai <argv>`` in ``workers`` processes and wait for all; the worst exit status.

    Ctrl-C (or SIGTERM) is passed on to every worker, which stop cleanly and resumably.
    """
    env = dict(os.environ)
    # Share the cores out rather than let every worker's PyTorch use all of them (oversubscription).
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // workers)))
    procs = [subprocess.Popen([sys.executable, "-m", "reproai", *argv], env=env) for _ in range(workers)]
    say(f"started {workers} workers (pids {', '.join(str(p.pid) for p in procs)})")

    def forward(signum: int, frame: FrameType | None) -> None:  # noqa: ARG001
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        while any(p.poll() is None for p in procs):
            # The terminal sent SIGINT to the workers too: wait for them to stop cleanly.
            with contextlib.suppress(KeyboardInterrupt):
                time.sleep(0.5)
    finally:
        signal.signal(signal.SIGTERM, previous)
    codes = [p.returncode for p in procs]
    if any(c == 130 or c == -signal.SIGINT for c in codes):
        return 130
    return max((abs(c) for c in codes), default=0)


def run_local_study(
    loaded: LoadedConfig,
    *,
    workers: int,
    config_path: str | Path,
    overrides: Sequence[str] = (),
    storage: str | None = None,
    tracking_uri: str | None = None,
    fresh: bool = False,
) -> tuple[int, str]:
    """Run ``workers`` processes of ``reproai run`` on the study of ``loaded`` (read from ``config_path`` with
    ``overrides``) and wait for all; their worst exit status, and the tracking URI the study is tracked at.

    The storage must take parallel writers (:func:`check_parallel_storage`). With an SQLite tracking store
    (the default), the workers write through a :func:`local_tracking_server` in front of it.
    """
    # The study pulls in torch and MLflow: imported here, not when reproai.cluster is.
    from reproai.runtime import study_key
    from reproai.runtime._claims import last_claim_number
    from reproai.runtime._storage import DEFAULT_STORAGE, open_storage
    from reproai.tracking import default_tracking_uri

    if workers < 1:
        raise ConfigError(f"--workers {workers}: at least one worker is needed.")
    check_parallel_storage(storage, workers)
    if storage is None:  # one worker (several were refused above): the default SQLite storage is safe
        storage = DEFAULT_STORAGE
    uri = tracking_uri or default_tracking_uri()
    server = local_tracking_server(uri) if uri.startswith("sqlite") else contextlib.nullcontext(uri)
    with server as worker_uri:
        argv = [
            "run",
            str(config_path),
            *[f"--set={o}" for o in overrides],
            "--tracking-uri",
            worker_uri,
            "--storage",
            storage,
            "--quiet",
            "--no-summary",
        ]
        if fresh:  # one new study for all: claims after the current newest make it, and all join it
            argv += [
                "--fresh-after",
                str(last_claim_number(open_storage(storage), study_key(loaded.experiment.name, loaded.hash))),
            ]
        code = run_workers(argv, workers)
    return code, uri
