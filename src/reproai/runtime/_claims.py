"""Exactly-once work among workers that share an Optuna storage: claims and heartbeats.

Workers started independently (on one machine or many) agree on who creates the study run, who
refits an outer fold and who writes the headline, through the storage they already share. A claim
is a trial in a small Optuna study of its own: trial numbers are handed out atomically by every
storage (RDB and journal), so the lowest-numbered live claim wins. A claim whose worker died (its
process is gone, or its heartbeat stopped) is failed, and the next worker claims again.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from reproai.runtime import _stopping as stopping
from reproai.runtime._names import claims_study
from reproai.runtime._trials import quiet_optuna, trial_id
from reproai.runtime._workers import worker_alive, worker_id

__all__ = ["heartbeat", "is_dead", "claim", "claimed", "once", "last_claim_number", "release"]

# A worker on another host is presumed dead when its heartbeat is older than the grace period.
HEARTBEAT_S = float(os.environ.get("REPROAI_HEARTBEAT_S", "10"))
GRACE_S = float(os.environ.get("REPROAI_HEARTBEAT_GRACE_S", "60"))


def is_dead(trial: FrozenTrial, now: float | None = None) -> bool:
    """Whether the worker of a RUNNING trial is gone: its process (on this host), or its heartbeat."""
    alive = worker_alive(trial.user_attrs.get("worker", ""))
    if alive is not None:
        return not alive
    beat = trial.user_attrs.get("heartbeat")
    if beat is None:
        beat = trial.datetime_start.timestamp() if trial.datetime_start else time.time()
    return (now or time.time()) - float(beat) > GRACE_S


@contextmanager
def heartbeat(storage: optuna.storages.BaseStorage, trial_id: int) -> Iterator[None]:
    """Record this worker on a trial, and a heartbeat every few seconds while the block runs."""
    storage.set_trial_user_attr(trial_id, "worker", worker_id())
    storage.set_trial_user_attr(trial_id, "heartbeat", time.time())
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(HEARTBEAT_S):
            # The trial finished meanwhile, or the storage hiccuped: the next beat retries.
            with contextlib.suppress(Exception):
                storage.set_trial_user_attr(trial_id, "heartbeat", time.time())

    thread = threading.Thread(target=beat, name="reproai-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _claims(storage: optuna.storages.BaseStorage, name: str) -> optuna.Study:
    with quiet_optuna():
        return optuna.create_study(storage=storage, study_name=claims_study(name), load_if_exists=True)


def _fail_dead(study: optuna.Study, storage: optuna.storages.BaseStorage) -> None:
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if is_dead(t):
            try:
                storage.set_trial_user_attr(trial_id(t), "failed_reason", "worker died")
                storage.set_trial_state_values(trial_id(t), state=TrialState.FAIL)
            except RuntimeError:  # it finished meanwhile
                pass


def last_claim_number(storage: optuna.storages.BaseStorage, name: str) -> int:
    """The number of the newest claim of ``name`` (-1 if none): work claimed later is new work."""
    trials = _claims(storage, name).get_trials(deepcopy=False)
    return max((t.number for t in trials), default=-1)


def claimed(storage: optuna.storages.BaseStorage, name: str, *, after: int = -1) -> dict[str, Any] | None:
    """The value of the newest completed claim of ``name`` numbered above ``after``, or None."""
    done = [
        t for t in _claims(storage, name).get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.number > after
    ]
    return dict(max(done, key=lambda t: t.number).user_attrs) if done else None


def claim(storage: optuna.storages.BaseStorage, name: str, *, after: int = -1) -> optuna.Trial | None:
    """Try to claim the work ``name``: the claim's trial if this worker won it, else None (another
    worker holds it or has done it)."""
    study = _claims(storage, name)
    _fail_dead(study, storage)
    trial = study.ask()
    trial.set_user_attr("worker", worker_id())
    trial.set_user_attr("heartbeat", time.time())
    live = [
        t.number
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.COMPLETE))
        if t.number > after
    ]
    if min(live) == trial.number:
        return trial
    trial.set_user_attr("lost", True)
    study.tell(trial, state=TrialState.FAIL)
    return None


def release(trial: optuna.Trial, *, value: dict[str, Any] | None = None, reason: str = "") -> None:
    """End a claim: done with ``value`` (COMPLETE), or given up with ``reason`` (FAIL; others may claim)."""
    if value is None:
        trial.set_user_attr("failed_reason", reason[:2000])
        trial.study.tell(trial, state=TrialState.FAIL)
        return
    for k, v in value.items():
        trial.set_user_attr(k, v)
    trial.study.tell(trial, 0.0)


def once(
    storage: optuna.storages.BaseStorage,
    name: str,
    create: Callable[[], dict[str, Any]],
    *,
    after: int = -1,
    poll_s: float = 0.5,
    timeout_s: float | None = None,
) -> tuple[dict[str, Any], bool]:
    """Run ``create`` in exactly one worker and give every worker its value: ``(value, created here)``."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        value = claimed(storage, name, after=after)
        if value is not None:
            return value, False
        trial = claim(storage, name, after=after)
        if trial is not None:
            with heartbeat(storage, trial_id(trial)):
                try:
                    value = create()
                except BaseException as e:
                    release(trial, reason=f"{type(e).__name__}: {e}")
                    raise
            release(trial, value=value)
            return value, True
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"Waited {timeout_s} s for another worker to finish {name!r}.")
        time.sleep(poll_s)
        stopping.check()
