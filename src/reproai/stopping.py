"""Stopping on SIGTERM (what cluster schedulers send before they kill a job) and on Ctrl-C.

The handlers raise at once, and also record the request: an exception raised inside a
garbage-collection callback is swallowed by Python, so long loops call :func:`check` to raise it again
at a safe point. ``Terminated`` is a ``KeyboardInterrupt``, so SIGTERM takes Ctrl-C's path: the running
trial is failed, its runs end KILLED, tracking is flushed, and the same command resumes.
"""

from __future__ import annotations

__all__ = ["Terminated", "on_sigterm", "on_sigint", "check", "reset"]

_requested: type[KeyboardInterrupt] | None = None


class Terminated(KeyboardInterrupt):
    """The process was asked to stop (SIGTERM)."""


def on_sigterm(signum, frame) -> None:  # noqa: ARG001
    global _requested
    _requested = Terminated
    raise Terminated()


def on_sigint(signum, frame) -> None:  # noqa: ARG001
    global _requested
    _requested = _requested or KeyboardInterrupt
    raise KeyboardInterrupt()


def check() -> None:
    """Raise the stop (``Terminated`` or ``KeyboardInterrupt``) that was requested, if any."""
    if _requested is not None:
        raise _requested()


def reset() -> None:
    global _requested
    _requested = None
