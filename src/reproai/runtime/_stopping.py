"""Stopping on SIGTERM (what cluster schedulers send before they kill a job) and on Ctrl-C.

The handlers only record the request; long loops call :func:`check`, which raises it at a safe point
(between training steps, prediction batches, decoded images and trials). Raising from the handler
itself could land anywhere: inside an SQLite write, whose lock then blocks the cleanup that marks the
runs KILLED, or inside a garbage-collection callback, where Python swallows it. A second signal of the
same kind raises at once, for a process stuck where nothing checks. ``Terminated`` is a
``KeyboardInterrupt``, so SIGTERM takes Ctrl-C's path: the running trial is failed, its runs end KILLED,
tracking is flushed, and the same command resumes.
"""

from __future__ import annotations

import time
from types import FrameType

__all__ = ["Terminated", "on_sigterm", "on_sigint", "check", "sleep", "reset"]

_requested: type[KeyboardInterrupt] | None = None


class Terminated(KeyboardInterrupt):
    """The process was asked to stop (SIGTERM)."""


def _request(kind: type[KeyboardInterrupt]) -> None:
    global _requested
    if _requested is kind:  # asked twice: stop now, wherever this is
        raise kind()
    _requested = _requested or kind


def on_sigterm(signum: int, frame: FrameType | None) -> None:  # noqa: ARG001
    _request(Terminated)


def on_sigint(signum: int, frame: FrameType | None) -> None:  # noqa: ARG001
    _request(KeyboardInterrupt)


def check() -> None:
    """Raise the stop (``Terminated`` or ``KeyboardInterrupt``) that was requested, if any."""
    if _requested is not None:
        raise _requested()


def sleep(seconds: float) -> None:
    """Sleep, but raise a stop requested meanwhile at once (a wait is a safe point)."""
    end = time.monotonic() + seconds
    check()
    while (left := end - time.monotonic()) > 0:
        time.sleep(min(left, 0.2))
        check()


def reset() -> None:
    global _requested
    _requested = None
