"""Stopping on SIGTERM, what cluster schedulers send before they kill a job.

The handler raises :class:`Terminated` at once, and also records the request: an exception raised
inside a garbage-collection callback is swallowed by Python, so long loops call :func:`check` to raise
it again at a safe point. ``Terminated`` is a ``KeyboardInterrupt``, so it takes Ctrl-C's path: the
running trial is failed, its runs end KILLED, tracking is flushed, and the same command resumes.
"""

from __future__ import annotations

__all__ = ["Terminated", "on_sigterm", "check", "reset"]

_requested = False


class Terminated(KeyboardInterrupt):
    """The process was asked to stop (SIGTERM)."""


def on_sigterm(signum, frame) -> None:  # noqa: ARG001
    global _requested
    _requested = True
    raise Terminated()


def check() -> None:
    """Raise :class:`Terminated` if a stop was requested."""
    if _requested:
        raise Terminated()


def reset() -> None:
    global _requested
    _requested = False
