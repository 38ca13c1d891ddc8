"""Waiting out a server that went away (the MLflow tracking server, the database behind the Optuna
storage): bounded back-off, a clear message, then a clean stop.

Studies run for days; a server restart must not cost the trial in progress, and the user must see
what the study is waiting for. A call that cannot reach its server is retried, with the back-off
doubling from 0.5 s to 30 s, for up to the patience (``REPROAI_TRACKING_RETRY_S`` and
``REPROAI_STORAGE_RETRY_S``, 600 s each). After that the study stops with a :class:`TrackingError`
(resumable: finished trials are kept), and later calls fail at once instead of waiting again.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from typing import Any

import optuna

from reproai._console import say
from reproai.errors import TrackingError, causes
from reproai.runtime import _stopping as stopping

__all__ = ["Patience", "PatientClient", "PatientStorage", "is_unreachable", "is_disconnected"]

# Connection failures, as requests/urllib3 word them inside MLflow's exceptions.
_UNREACHABLE = (
    "Connection refused",
    "Failed to establish a new connection",
    "Max retries exceeded",
    "Connection aborted",
    "RemoteDisconnected",
    "Connection reset by peer",
    "too many 502 error",
    "too many 503 error",
    "too many 504 error",
)


def is_unreachable(e: BaseException | None) -> bool:
    """Whether ``e`` (or an exception it came from) says an HTTP server could not be reached at all."""
    import requests

    return any(
        isinstance(x, (requests.exceptions.ConnectionError, ConnectionError)) or any(s in str(x) for s in _UNREACHABLE)
        for x in causes(e)
    )


def is_disconnected(e: BaseException | None) -> bool:
    """Whether ``e`` (or an exception it came from) is a lost or refused database connection, rather
    than a problem with the data (SQLAlchemy's OperationalError and InterfaceError)."""
    import sqlalchemy.exc

    return any(
        isinstance(x, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError))
        or getattr(x, "connection_invalidated", False)
        for x in causes(e)
    )


class Patience:
    """Calls a function, waiting out failures that ``transient`` recognises, for one server."""

    def __init__(
        self, what: str, transient: Callable[[BaseException], bool], variable: str, patience: float | None = None
    ) -> None:
        self.what, self.transient, self.variable = what, transient, variable
        self.patience = float(os.environ.get(variable, "600")) if patience is None else patience
        self.gave_up_on: BaseException | None = None  # the failure after which it gave up

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self.gave_up_on is not None:
            # Not tried again: each try of a server that is down costs the client's own retries (seconds),
            # and the calls that come after giving up (ending runs on the way out) would add them up.
            raise TrackingError(self._gave_up_message(self.gave_up_on))
        started, delay = None, 0.5
        while True:
            try:
                result = fn(*args, **kwargs)
            except Exception as e:
                if not self.transient(e):
                    raise
                now = time.monotonic()
                if started is not None and now - started >= self.patience:
                    self.gave_up_on = e
                    raise TrackingError(self._gave_up_message(e)) from e
                if started is None:
                    started = now
                    say(
                        f"{self.what} is not answering ({type(e).__name__}); retrying for up to "
                        f"{self.patience:.0f} s ({self.variable})."
                    )
                stopping.sleep(min(delay, max(0.0, started + self.patience - now)))
                delay = min(delay * 2, 30.0)
                continue
            if started is not None:
                say(f"{self.what} answers again (reconnected after {time.monotonic() - started:.0f} s).")
            return result

    def _gave_up_message(self, e: BaseException) -> str:
        return (
            f"{self.what} has not answered for {self.patience:.0f} s ({type(e).__name__}: {str(e)[:300]}). The "
            "study stopped; finished trials are kept. Start the server, then run the same command again to "
            f"resume ({self.variable} sets how long to wait)."
        )


class PatientClient:
    """An ``MlflowClient`` whose calls wait out a tracking server that went away."""

    def __init__(self, client: Any, uri: str, patience: float | None = None) -> None:
        self._client = client
        self._patience = Patience(
            f"the MLflow tracking server at {uri}", is_unreachable, "REPROAI_TRACKING_RETRY_S", patience
        )

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        return functools.partial(self._patience.call, attr) if callable(attr) else attr


def _storage_method(name: str) -> Callable[..., Any]:
    def method(self: PatientStorage, *args: Any, **kwargs: Any) -> Any:
        return self._patience.call(getattr(self._backend, name), *args, **kwargs)

    method.__name__ = name
    return method


class _Delegating(optuna.storages.BaseStorage):
    # Optuna's abstract storage methods, bound here so that a type checker sees a concrete class; the
    # loop below binds every public method (these included) the same way.
    create_new_study = _storage_method("create_new_study")
    delete_study = _storage_method("delete_study")
    set_study_user_attr = _storage_method("set_study_user_attr")
    set_study_system_attr = _storage_method("set_study_system_attr")
    get_study_id_from_name = _storage_method("get_study_id_from_name")
    get_study_name_from_id = _storage_method("get_study_name_from_id")
    get_study_directions = _storage_method("get_study_directions")
    get_study_user_attrs = _storage_method("get_study_user_attrs")
    get_study_system_attrs = _storage_method("get_study_system_attrs")
    get_all_studies = _storage_method("get_all_studies")
    create_new_trial = _storage_method("create_new_trial")
    set_trial_param = _storage_method("set_trial_param")
    set_trial_state_values = _storage_method("set_trial_state_values")
    set_trial_intermediate_value = _storage_method("set_trial_intermediate_value")
    set_trial_user_attr = _storage_method("set_trial_user_attr")
    set_trial_system_attr = _storage_method("set_trial_system_attr")
    get_trial = _storage_method("get_trial")
    get_all_trials = _storage_method("get_all_trials")


# Every public method of an Optuna storage goes through the patience (the storage is an ABC, so
# they are defined on the class rather than looked up on demand).
for _name, _value in vars(optuna.storages.BaseStorage).items():
    if callable(_value) and not _name.startswith("_"):
        setattr(_Delegating, _name, _storage_method(_name))
_Delegating.__abstractmethods__ = frozenset()


class PatientStorage(_Delegating):
    """An Optuna storage whose calls wait out a database server that restarted or went away.

    Each call of an RDB storage is one transaction, rolled back when its connection fails, so it
    is safe to try again; the engine's ``pool_pre_ping`` replaces the connections the restart broke.
    """

    def __init__(self, backend: optuna.storages.BaseStorage, what: str, patience: float | None = None) -> None:
        self._backend = backend
        self._patience = Patience(what, is_disconnected, "REPROAI_STORAGE_RETRY_S", patience)

    def __getattr__(self, name: str) -> Any:  # anything else a storage offers, as it is
        return getattr(self._backend, name)
