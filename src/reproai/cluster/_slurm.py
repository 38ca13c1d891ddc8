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
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from reproai._console import say
from reproai.cluster._slurm_options import (
    SlurmOptions,
    Submission,
    check_cluster_storage,
    check_cluster_tracking,
    check_reachable,
    executor_parameters,
    exit_meaning,
    worker_argv,
    worker_env,
)
from reproai.errors import ReproaiError

__all__ = ["SlurmWorker", "submit", "sbatch_script"]

_INSTALL_SUBMITIT = 'pip install "reproai[slurm]" (or pip install submitit)'


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
