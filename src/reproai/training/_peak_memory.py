"""The peak memory of a stretch of work (one fit): resident memory on Linux, and the GPU's allocator."""

from __future__ import annotations

import contextlib
import resource
from collections.abc import Iterator
from pathlib import Path

import torch

__all__ = ["PeakMemory", "peak_memory"]

_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")


class PeakMemory:
    """What :func:`peak_memory` measured, in MiB: ``rss`` (the process's peak resident set during the
    block, or since it started where the peak cannot be reset), ``cuda`` (the allocator's peak, or None),
    and whether ``rss`` covers the block alone."""

    rss: float = float("nan")
    cuda: float | None = None
    per_block: bool = False

    def metrics(self) -> dict[str, float]:
        out = {"peak_rss_mib": self.rss}
        if self.cuda is not None:
            out["peak_cuda_mib"] = self.cuda
        return out


def _hwm_mib() -> float | None:
    """VmHWM (the peak resident set size) of this process, in MiB, on Linux."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


@contextlib.contextmanager
def peak_memory(device: torch.device | None = None) -> Iterator[PeakMemory]:
    """Measure the peak memory of the block. On Linux the kernel's peak-RSS counter is reset first
    (``/proc/self/clear_refs``, "5"), so the figure is the block's own; elsewhere it is the process's
    peak so far (``getrusage``)."""
    out = PeakMemory()
    try:
        _CLEAR_REFS.write_text("5")
        out.per_block = True
    except OSError:
        out.per_block = False
    cuda = device is not None and device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    try:
        yield out
    finally:
        hwm = _hwm_mib() if out.per_block else None
        out.rss = hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        if cuda:
            out.cuda = torch.cuda.max_memory_allocated(device) / 2**20
