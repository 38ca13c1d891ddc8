"""Waiting out a tracking server that went away: bounded back-off, a clear message, then a clean stop.

MLflow's own HTTP retries are short and silent; a study that runs for days must survive a server
restart without losing the trial it is in, and say what it is waiting for. When the server stays
away longer than the patience, the study stops with a :class:`TrackingError` (resumable: finished
trials live in the Optuna storage) and later calls fail at once instead of waiting again.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from typing import Any

from reproai import stopping
from reproai.errors import TrackingError

__all__ = ["PatientClient", "is_unreachable", "patience_s"]

# Messages of connection failures, as requests/urllib3 word them inside MLflow's exceptions.
_UNREACHABLE = ("Connection refused", "Failed to establish a new connection", "Max retries exceeded",
                "Connection aborted", "RemoteDisconnected", "Connection reset by peer", "too many 502 error",
                "too many 503 error", "too many 504 error")


def patience_s() -> float:
    """How long to wait for a tracking server that does not answer: ``$REPROAI_TRACKING_RETRY_S`` (600)."""
    return float(os.environ.get("REPROAI_TRACKING_RETRY_S", "600"))


def is_unreachable(e: BaseException | None) -> bool:
    """Whether ``e`` (or an exception it came from) says the server could not be reached at all."""
    import requests

    while e is not None:
        if isinstance(e, (requests.exceptions.ConnectionError, ConnectionError)):
            return True
        if any(s in str(e) for s in _UNREACHABLE):
            return True
        e = e.__cause__ or e.__context__
    return False


def _say(message: str) -> None:
    from tqdm.auto import tqdm

    tqdm.write(f"reproai: {message}", file=sys.stderr)


class PatientClient:
    """Wraps an ``MlflowClient``: a call that cannot reach the server is retried with exponential
    back-off (1 s doubling to 30 s) for up to :func:`patience_s` seconds per outage."""

    def __init__(self, client: Any, uri: str, patience: float | None = None) -> None:
        self._client, self._uri = client, uri
        self._patience = patience_s() if patience is None else patience
        self._gave_up = False

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        @functools.wraps(attr)
        def call(*args: Any, **kwargs: Any) -> Any:
            return self._call(attr, args, kwargs)

        return call

    def _call(self, fn: Any, args: tuple, kwargs: dict) -> Any:
        started, delay = None, 1.0
        while True:
            try:
                result = fn(*args, **kwargs)
            except Exception as e:
                if not is_unreachable(e):
                    raise
                now = time.monotonic()
                if self._gave_up or (started is not None and now - started >= self._patience):
                    self._gave_up = True
                    raise TrackingError(
                        f"The MLflow tracking server at {self._uri} has not answered for {self._patience:.0f} s "
                        f"({type(e).__name__}: {str(e)[:300]}). The study stopped; finished trials are kept. Start "
                        "the server, then run the same command again to resume (REPROAI_TRACKING_RETRY_S sets how "
                        "long to wait).") from e
                if started is None:
                    started = now
                    _say(f"the MLflow tracking server at {self._uri} is not answering ({type(e).__name__}); "
                         f"retrying for up to {self._patience:.0f} s (REPROAI_TRACKING_RETRY_S).")
                stopping.sleep(min(delay, max(0.0, started + self._patience - now)))
                delay = min(delay * 2, 30.0)
                continue
            if started is not None:
                _say(f"the MLflow tracking server at {self._uri} answers again, after {time.monotonic() - started:.0f} s.")
            return result
