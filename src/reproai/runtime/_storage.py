"""Optuna storages by URL, and the state of a search's trials: which count as done, and those left by dead workers."""

from __future__ import annotations

import time
from typing import Any

import optuna
from optuna.trial import TrialState

from reproai.errors import ConfigError
from reproai.runtime._retry import PatientStorage
from reproai.runtime._trials import cached_storage, trial_id

__all__ = [
    "open_storage",
    "storage_label",
    "fail_dead_trials",
    "finished_trials",
    "is_done",
    "DEFAULT_STORAGE",
]

DEFAULT_STORAGE = "sqlite:///optuna.db"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def open_storage(url: str | None = None) -> optuna.storages.BaseStorage:
    """An Optuna storage from a URL: ``sqlite:///f.db``, ``postgresql://...``, or a journal file
    (``journal:PATH``, or a path ending in ``.log`` / ``.journal``). A database server's storage
    waits out a restart (see :mod:`reproai.runtime._retry`)."""
    url = url or DEFAULT_STORAGE
    try:
        if url.startswith("journal:") or url.endswith((".log", ".journal")):
            from optuna.storages.journal import JournalFileBackend

            path = url[len("journal:") :] if url.startswith("journal:") else url
            return optuna.storages.JournalStorage(JournalFileBackend(path))
        engine: dict[str, Any] = {}
        if url.startswith("sqlite"):
            engine = {"connect_args": {"timeout": 60}}  # wait for a lock rather than fail at once
        elif url.startswith(("postgresql", "mysql")):
            engine = {"pool_pre_ping": True}  # replace connections a server restart broke
        # No Optuna heartbeat: reproai records its own on every storage (see reproai.runtime._claims).
        storage = _rdb_storage(url, engine)
        if url.startswith(("postgresql", "mysql")):
            from sqlalchemy.engine import make_url

            # Wrapped after the first connection succeeded: a wrong URL fails at once, a restart is waited out.
            server = make_url(url)
            name = "PostgreSQL" if url.startswith("postgresql") else "MySQL"
            return PatientStorage(
                cached_storage(storage),
                f"the Optuna storage ({name} at {server.host}:{server.port or ''}/{server.database})",
            )
        return storage
    except Exception as e:  # SQLAlchemy and driver errors have many types
        raise ConfigError(
            f"Cannot open the Optuna storage {url!r}: {type(e).__name__}: {e}. Check --storage "
            "(e.g. sqlite:///optuna.db, postgresql://user@host/db, journal:/shared/study.log) "
            "and that the database server is up."
        ) from e


def storage_label(url: str | None) -> str:
    """``url`` (default :data:`DEFAULT_STORAGE`) as it may be shown and logged: a password is hidden."""
    url = url or DEFAULT_STORAGE
    if url.startswith("journal:") or url.endswith((".log", ".journal")):
        return url
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a database URL: open_storage reports it
        return url


def _rdb_storage(url: str, engine: dict[str, Any], attempts: int = 5) -> optuna.storages.RDBStorage:
    """An RDB storage; workers that start together on an empty database race to create Optuna's
    tables, and the losers see the winner's (an integrity error): they try again."""
    import sqlalchemy.exc

    for attempt in range(attempts):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


def is_done(trial: optuna.trial.FrozenTrial) -> bool:
    """Whether a trial counts towards ``n_trials``: it completed, was pruned, or failed on its own
    parameters (not one stopped, died, or asked in surplus: those are run again)."""
    return trial.state in FINISHED or (trial.state == TrialState.FAIL and bool(trial.user_attrs.get("error")))


def finished_trials(study: optuna.Study) -> int:
    """The number of trials that count towards ``n_trials`` (see :func:`is_done`)."""
    return sum(is_done(t) for t in study.get_trials(deepcopy=False))


def fail_dead_trials(study: optuna.Study, storage: optuna.storages.BaseStorage) -> dict[int, str]:
    """Mark FAILED the RUNNING trials whose worker is dead, and enqueue each again with its parameters.

    A worker is dead when its process is gone (on this host) or its heartbeat stopped (any host, any
    storage: Optuna's own heartbeat covers RDB storages only, and only trials run by ``optimize``).
    Returns the failed trials' numbers and their workers.
    """
    from reproai.runtime._claims import is_dead

    failed = {}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not is_dead(trial):
            continue
        wid = trial.user_attrs.get("worker", "unknown")
        try:
            storage.set_trial_user_attr(trial_id(trial), "failed_reason", f"worker {wid} died")
            storage.set_trial_state_values(trial_id(trial), state=TrialState.FAIL)
        except RuntimeError:  # it finished meanwhile
            continue
        study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
        failed[trial.number] = wid
    return failed
