"""A phase's optimizer and learning-rate schedule, built from the registries.

Any ``torch.optim`` optimizer and any ``torch.optim.lr_scheduler`` scheduler can be named, with its
keyword arguments; the phase's ``lr`` and ``weight_decay`` are passed to every optimizer. What a
scheduler needs to know about the phase (``T_max``, ``total_steps``, ``epochs``, ``steps_per_epoch``,
``max_lr``) is filled in when the config does not give it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, LRScheduler, ReduceLROnPlateau, SequentialLR

from reproai.config._registry import create, registry, target_and_kwargs
from reproai.config._schema import Phase
from reproai.config._targets import accepts
from reproai.errors import ConfigError

__all__ = ["make_optimizer", "Schedule", "make_schedule", "cosine", "linear_warmup", "warmup_cosine"]

# Schedulers that PyTorch documents as stepped after every batch.
_PER_STEP = ("OneCycleLR", "CyclicLR")


def make_optimizer(phase: Phase, params: Iterable[torch.nn.Parameter]) -> Optimizer:
    """The phase's optimizer over ``params``, with the phase's ``lr`` and ``weight_decay``.

    Raises:
        ConfigError: the optimizer takes no ``weight_decay`` but the phase sets one, or no ``momentum``
            but the phase sets one.
    """
    target, _ = target_and_kwargs(phase.optimizer)
    cls = registry("optimizer").entry(target).load()
    given: dict[str, Any] = {"lr": phase.lr}
    if accepts(cls, "weight_decay"):
        given["weight_decay"] = phase.weight_decay
    elif phase.weight_decay:
        raise ConfigError(
            f"Phase {phase.name!r}: the optimizer {cls.__name__} takes no weight_decay, but the phase "
            f"sets weight_decay={phase.weight_decay}; set it to 0."
        )
    if phase.momentum is not None:
        if not accepts(cls, "momentum"):
            raise ConfigError(
                f"Phase {phase.name!r}: the optimizer {cls.__name__} takes no momentum, but the phase "
                f"sets momentum={phase.momentum}; remove it."
            )
        given["momentum"] = phase.momentum
    return create("optimizer", phase.optimizer, list(params), **given)


@dataclass
class Schedule:
    """A learning-rate scheduler and when it steps: after every batch (``"step"``) or every epoch."""

    scheduler: LRScheduler | ReduceLROnPlateau
    interval: str

    def after_batch(self) -> None:
        if self.interval == "step" and not isinstance(self.scheduler, ReduceLROnPlateau):
            self.scheduler.step()

    def after_epoch(self, dev_loss: float | None) -> None:
        if self.interval != "epoch":
            return
        if isinstance(self.scheduler, ReduceLROnPlateau):
            if dev_loss is None:
                raise ConfigError("ReduceLROnPlateau steps on the dev loss, but this fit has no dev set.")
            self.scheduler.step(dev_loss)
        else:
            self.scheduler.step()


def scheduler_interval(phase: Phase) -> str | None:
    """When the phase's scheduler steps: its ``scheduler_interval``, else the scheduler's own rule."""
    if phase.scheduler is None:
        return None
    if phase.scheduler_interval is not None:
        return phase.scheduler_interval
    target, _ = target_and_kwargs(phase.scheduler)
    entry = registry("lr_scheduler").entry(target)
    if "interval" in entry.meta:
        return str(entry.meta["interval"])
    return "step" if getattr(entry.load(), "__name__", "") in _PER_STEP else "epoch"


def make_schedule(phase: Phase, optimizer: Optimizer, *, epochs: int, steps_per_epoch: int) -> Schedule | None:
    """The phase's scheduler on ``optimizer`` for ``epochs`` epochs of ``steps_per_epoch`` steps, or None."""
    interval = scheduler_interval(phase)
    if interval is None:
        return None
    total = epochs * steps_per_epoch
    fill = {
        "T_max": lambda: epochs if interval == "epoch" else total,
        "total_steps": lambda: total,
        "epochs": lambda: epochs,
        "steps_per_epoch": lambda: steps_per_epoch,
        "max_lr": lambda: phase.lr,
    }
    scheduler = create("lr_scheduler", phase.scheduler, optimizer, fill=fill)
    if isinstance(scheduler, ReduceLROnPlateau) and interval != "epoch":
        raise ConfigError(
            f"Phase {phase.name!r}: ReduceLROnPlateau steps once an epoch, on the dev loss; set "
            "scheduler_interval='epoch' (or leave it None)."
        )
    return Schedule(scheduler, interval)


# -- built-in schedules ----------------------------------------------------------------------------------


def cosine(optimizer: Optimizer, *, T_max: int, eta_min: float = 0.0) -> LRScheduler:  # noqa: N803 (PyTorch's name)
    """Cosine annealing from the phase's lr to ``eta_min`` over the phase, stepped each epoch
    (``CosineAnnealingLR``; Loshchilov & Hutter, SGDR, 2017)."""
    return CosineAnnealingLR(optimizer, T_max=T_max, eta_min=eta_min)


def _warmup_steps(steps_per_epoch: int, warmup_epochs: float) -> int:
    return max(1, round(warmup_epochs * steps_per_epoch))


def linear_warmup(
    optimizer: Optimizer, *, steps_per_epoch: int, warmup_epochs: float = 1.0, start_factor: float = 0.01
) -> LRScheduler:
    """A linear warm-up from ``start_factor`` x lr to the lr over ``warmup_epochs``, then constant;
    stepped each batch (Goyal et al., 2017, "Accurate, large minibatch SGD")."""
    return LinearLR(optimizer, start_factor=start_factor, total_iters=_warmup_steps(steps_per_epoch, warmup_epochs))


def warmup_cosine(
    optimizer: Optimizer,
    *,
    total_steps: int,
    steps_per_epoch: int,
    warmup_epochs: float = 1.0,
    start_factor: float = 0.01,
    eta_min: float = 0.0,
) -> LRScheduler:
    """A linear warm-up over ``warmup_epochs``, then cosine annealing to ``eta_min`` over the rest of the
    phase; stepped each batch."""
    warmup = min(_warmup_steps(steps_per_epoch, warmup_epochs), max(total_steps - 1, 1))
    return SequentialLR(
        optimizer,
        [
            LinearLR(optimizer, start_factor=start_factor, total_iters=warmup),
            CosineAnnealingLR(optimizer, T_max=max(total_steps - warmup, 1), eta_min=eta_min),
        ],
        milestones=[warmup],
    )
