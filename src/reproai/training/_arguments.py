"""The arguments of one fit, grouped: the subsets it sees, how it trains and scores, what watches it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from reproai.tracking import Run, Tracker

__all__ = ["Subsets", "FitOptions", "FitHooks", "EpochCallback"]

EpochCallback = Callable[[int, dict[str, float]], None]


@dataclass(frozen=True)
class Subsets:
    """The examples one fit sees: index arrays into the data, each ``(n,)`` int. The fit trains on
    ``train``; with ``dev`` it stops early and fits the threshold there; it predicts ``dev`` and ``test``."""

    train: np.ndarray
    dev: np.ndarray | None = None
    test: np.ndarray | None = None


@dataclass(frozen=True)
class FitOptions:
    """How a fit trains and scores: the dev ``metric`` (early stopping), the ``seed`` every random choice
    derives from, each phase's ``epochs`` (None: as configured, with early stopping on dev) and the binary
    decision ``threshold`` (None: Youden's J on the dev predictions)."""

    metric: str = "roc_auc"
    seed: int = 0
    epochs: Sequence[int] | None = None
    threshold: float | None = None


@dataclass
class FitHooks:
    """What watches a fit: a ``tracker`` (a run per phase under ``parent``, tagged with ``tags``), a callback
    after each epoch (``on_epoch(i, metrics)``; it may raise to stop, e.g. to prune a trial), progress bars."""

    tracker: Tracker | None = None
    parent: Run | None = None
    tags: dict[str, Any] = field(default_factory=dict)
    on_epoch: EpochCallback | None = None
    progress: bool = True
