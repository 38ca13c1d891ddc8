"""One phase of a fit: epochs over the training set with its optimizer and LR schedule, mixed precision,
the dev metric after each epoch, early stopping that restores the best epoch's weights, and progress."""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from reproai.config._registry import describe
from reproai.config._schema import Phase, Training
from reproai.data._source import ImageSet
from reproai.evaluation._metrics import METRICS, compute_metrics
from reproai.models._network import backbone_eval, set_backbone_frozen
from reproai.runtime import _stopping as stopping
from reproai.tracking import Run
from reproai.training._arguments import FitHooks, FitOptions, Subsets
from reproai.training._augment import Transform
from reproai.training._batching import FeatureBatches
from reproai.training._losses import LossFn
from reproai.training._optim import make_optimizer, make_schedule
from reproai.training._outputs import FitResult, Predictions
from reproai.training._runner import Batches, Forward, Runner, predict

__all__ = ["PhaseContext", "phase_params", "params_if_cut_short", "train_phase", "steps_per_epoch"]


def steps_per_epoch(n_train: int, batch_size: int, *, skips_single: bool) -> int:
    """The optimizer steps of one epoch over ``n_train`` examples: one a batch, but none for a last batch
    of one example when ``skips_single`` (BatchNorm cannot train on it)."""
    full, last = divmod(n_train, batch_size)
    return full + (1 if last > 1 or (last == 1 and not skips_single) else 0)


def _is_better(metric: str, new: float, best: float | None) -> bool:
    if math.isnan(new):
        return best is None
    if best is None or math.isnan(best):
        return True
    return new > best if METRICS[metric].greater_is_better else new < best


@dataclass
class PhaseContext:
    """What every phase of one fit shares."""

    model: nn.Module
    runner: Runner
    training: Training
    data: ImageSet
    loss_fn: LossFn
    subsets: Subsets  # as numpy arrays
    options: FitOptions
    hooks: FitHooks
    generator: torch.Generator
    result: FitResult
    epochs_done: int = 0
    steps_done: int = 0
    dev_preds: Predictions | None = None  # dev predictions of the current weights, if known


def phase_params(phase: Phase, n_epochs: int, training: Training, batches: Batches) -> dict[str, Any]:
    return {
        "phase": phase.name,
        "epochs": n_epochs,
        "lr": phase.lr,
        "weight_decay": phase.weight_decay,
        "freeze_backbone": phase.freeze_backbone,
        "optimizer": describe(phase.optimizer),
        "scheduler": describe(phase.scheduler),
        "early_stopping_patience": phase.early_stopping_patience,
        "batch_size": training.batch_size,
        "loss": describe(training.loss),
        "augment": describe(training.augment),
        "on_cached_features": isinstance(batches, FeatureBatches),
    }


@contextlib.contextmanager
def params_if_cut_short(run: Run | None, params: dict[str, Any]) -> Iterator[None]:
    """Log a phase's ``params`` if it ends before its first epoch's metrics carried them."""
    try:
        yield
    except BaseException:
        if run is not None and params:
            with contextlib.suppress(Exception):  # the error that stopped the phase is the one to report
                run.log_params(params)
        raise


def train_phase(
    ctx: PhaseContext,
    phase: Phase,
    n_epochs: int,
    batches: Batches,
    forward: Forward,
    augment: Transform | None,
    run: Run | None,
    params: dict[str, Any],
) -> None:
    """Train one phase; with dev data, stop early and restore the best epoch's weights.

    The phase's ``params`` go with its first epoch's metrics (one request, not two) and are emptied
    once sent.
    """
    from tqdm.auto import tqdm

    model, training, data, dev, metric = ctx.model, ctx.training, ctx.data, ctx.subsets.dev, ctx.options.metric
    set_backbone_frozen(model, phase.freeze_backbone)
    optimizer = make_optimizer(phase, [q for q in model.parameters() if q.requires_grad])
    has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    skips_single = has_bn and not isinstance(batches, FeatureBatches)
    schedule = make_schedule(
        phase,
        optimizer,
        epochs=n_epochs,
        steps_per_epoch=steps_per_epoch(len(ctx.subsets.train), training.batch_size, skips_single=skips_single),
    )
    eval_bs = training.eval_batch_size or training.batch_size
    best, best_state, best_preds, best_epoch, waited = None, None, None, n_epochs, 0
    ctx.dev_preds = None
    bar = tqdm(range(n_epochs), desc=phase.name, unit="epoch", disable=not ctx.hooks.progress, leave=False)
    for epoch in bar:
        start = time.perf_counter()
        model.train()
        if phase.freeze_backbone:
            backbone_eval(model)  # keep the pretrained BatchNorm statistics
        total = torch.zeros((), device=ctx.runner.device)
        seen = 0
        steps = tqdm(
            batches(ctx.subsets.train, training.batch_size, augment=augment, generator=ctx.generator),
            total=math.ceil(len(ctx.subsets.train) / training.batch_size),
            desc=f"{phase.name} {epoch + 1}/{n_epochs}",
            unit="batch",
            disable=not ctx.hooks.progress,
            leave=False,
        )
        for x, y, _ in steps:
            stopping.check()  # Ctrl-C and SIGTERM stop here, between steps
            if len(y) < 2 and skips_single:
                continue  # BatchNorm cannot train on a batch of one
            optimizer.zero_grad(set_to_none=True)
            with ctx.runner.autocast():
                loss = ctx.loss_fn(forward(x), y)
            if ctx.runner.scaler is not None:
                ctx.runner.scaler.scale(loss).backward()
                ctx.runner.scaler.step(optimizer)
                ctx.runner.scaler.update()
            else:
                loss.backward()
                optimizer.step()
            if schedule is not None:
                schedule.after_batch()
            total += loss.detach() * len(y)  # summed on the device: no synchronisation per step
            seen += len(y)
            ctx.steps_done += 1
            if run is not None and training.log_every_n_steps and ctx.steps_done % training.log_every_n_steps == 0:
                run.log_metrics({"train_loss_step": float(loss.detach())}, step=ctx.steps_done, synchronous=False)
        row = {"train_loss": float(total) / max(seen, 1)}
        if dev is not None and len(dev):
            preds = predict(forward, ctx.runner, data.num_classes, batches, dev, eval_bs)
            z = torch.from_numpy(preds.logits).float()
            with torch.no_grad():
                row["dev_loss"] = float(
                    ctx.loss_fn(z if z.ndim > 1 else z[:, None], torch.from_numpy(data.labels[dev]))
                )
            row[f"dev_{metric}"] = compute_metrics(
                data.labels[dev], preds.proba, names=[metric], num_classes=data.num_classes
            )[metric]
            if _is_better(metric, row[f"dev_{metric}"], best):
                best, best_epoch, waited, best_preds = row[f"dev_{metric}"], epoch + 1, 0, preds
                # A copy only while a later epoch could replace these weights: the last epoch's are the model's.
                best_state = copy.deepcopy(model.state_dict()) if epoch < n_epochs - 1 else None
            else:
                waited += 1
        if schedule is not None:
            schedule.after_epoch(row.get("dev_loss"))
        row["epoch_seconds"] = time.perf_counter() - start
        ctx.result.history.append({"phase": phase.name, "epoch": epoch + 1, **row})
        stop = bool(phase.early_stopping_patience and dev is not None and waited >= phase.early_stopping_patience)
        if run is not None:
            # The phase's summary rides with its last epoch's metrics: one request to the store, not two.
            last = stop or epoch == n_epochs - 1
            summary = {"best_epoch": best_epoch, **({f"best_dev_{metric}": best} if best is not None else {})}
            run.log(params=params, metrics={**row, **(summary if last else {})}, step=epoch + 1)
            params.clear()
        # Shown at the next redraw, not now: a bar written to a log file redraws at most every 30 s.
        bar.set_postfix({k: f"{v:.4f}" for k, v in row.items()}, refresh=False)
        if ctx.hooks.on_epoch is not None:
            ctx.hooks.on_epoch(ctx.epochs_done, row)
        ctx.epochs_done += 1
        if stop:
            break
    if best_preds is not None:
        if best_state is not None:
            model.load_state_dict(best_state)
        ctx.dev_preds = best_preds  # saves a pass over the dev set when this is the last phase
    ctx.result.best_epochs[phase.name] = best_epoch
