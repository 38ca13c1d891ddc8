"""Who is working on a study: an id per process, and whether that process is still alive.

Runs and trials carry their worker's id, so that a later process can tell the work of a dead one
(left RUNNING forever by SIGKILL or a crash) from the work of a live one.
"""

from __future__ import annotations

import os
import socket
from functools import cache
from pathlib import Path

__all__ = ["worker_id", "worker_alive"]


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), to tell a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces; fields after it are space-separated.
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):  # a zombie has exited; only its parent has not collected it yet
        return None
    return fields[19]


@cache
def _this_worker(pid: int) -> str:
    return f"{socket.gethostname()}:{pid}:{_start_time(pid) or '0'}"


def worker_id() -> str:
    """``host:pid:start`` of this process."""
    return _this_worker(os.getpid())


def worker_alive(wid: str) -> bool | None:
    """True or False for a worker on this host; None (unknown) for one on another host."""
    try:
        host, pid, start = wid.rsplit(":", 2)
    except ValueError:
        return None
    if host != socket.gethostname():
        return None
    now = _start_time(int(pid))
    if now is None:
        return False
    return start == "0" or now == start
