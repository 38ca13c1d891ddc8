"""``torch.compile`` paid once per process: one compiled network per architecture, reused by every fit.

Compiling costs seconds to minutes (on a CPU, inductor compiles C++ for every graph), which a single fit
rarely earns back. A study runs hundreds of fits of a few architectures, so each architecture is
compiled once: later fits load their fresh initial weights into the same module, in place, and reuse
its compiled graphs (training and evaluation, frozen and full phases, each batch size) without
recompiling. Dynamo's counters and timings, which have no public API, are read here only
(``tests/test_compilation.py`` checks them against a real compilation).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

__all__ = ["compiled", "compile_seconds", "compiled_graphs", "clear"]

Forward = Callable[[torch.Tensor], torch.Tensor]

_MODELS: dict[str, tuple[nn.Module, Forward]] = {}


def _key(model: nn.Module, extra: str) -> str:
    """The architecture of ``model``: its module tree with every layer's shape, and how it runs."""
    return hashlib.sha256(f"{type(model).__qualname__}|{model!r}|{extra}".encode()).hexdigest()


def compiled(model: nn.Module, *, extra: str = "", backend: str = "inductor") -> tuple[nn.Module, Forward]:
    """The process's compiled module of ``model``'s architecture, holding ``model``'s weights, buffers and
    ``requires_grad`` flags (copied in place, so that the compiled graphs stay valid), and its compiled
    forward. The first call for an architecture compiles it (lazily, on the first batch).

    ``extra`` adds what else the graphs depend on (device, memory layout); ``backend`` is
    ``torch.compile``'s. The returned module is shared: it holds this fit's weights until the next fit of
    the same architecture.
    """
    key = _key(model, f"{extra}|{backend}")
    if key not in _MODELS:
        _MODELS[key] = (model, torch.compile(model, backend=backend))
        return _MODELS[key]
    shared, forward = _MODELS[key]
    with torch.no_grad():
        for p, q in zip(shared.parameters(), model.parameters(), strict=True):
            p.copy_(q)
            p.requires_grad_(q.requires_grad)
            p.grad = None
        for b, c in zip(shared.buffers(), model.buffers(), strict=True):
            b.copy_(c)
    shared.train(model.training)
    return shared, forward


def clear() -> None:
    """Forget the compiled modules (and Dynamo's caches)."""
    _MODELS.clear()
    torch._dynamo.reset()


def compile_seconds() -> float:
    """Seconds this process has spent compiling so far (Dynamo's and inductor's own timing)."""
    from torch._dynamo.utils import compilation_time_metrics

    times: Any = compilation_time_metrics.get("_compile.compile_inner", [])
    return float(sum(times))


def compiled_graphs() -> int:
    """Graphs Dynamo has compiled in this process so far (each recompilation is one more)."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])
