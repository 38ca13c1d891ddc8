"""One tracked fit of a study, and what every fit of a study shares (:class:`StudyContext`)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import optuna
import torch
from torch import nn

from reproai.config._schema import Experiment
from reproai.data._source import ImageSet
from reproai.errors import DiskFullError, ReproaiError, TrackingError
from reproai.evaluation._metrics import Direction, as_direction, metric_direction
from reproai.models._backbones import BackboneInfo
from reproai.models._network import recycle_model
from reproai.nested._folds import OuterFold, Splits
from reproai.nested._plan import FitPlan
from reproai.runtime._workers import worker_id
from reproai.tracking import Run, Tracker
from reproai.tracking._tags import Level, Tag
from reproai.training import FitHooks, FitResult, fit
from reproai.training._arguments import EpochCallback

__all__ = [
    "StudyContext",
    "fold_tags",
    "log_fit",
    "run_fit",
    "is_trial_fault",
    "error_text",
    "weights_sha256",
]


@dataclass
class StudyContext:
    """What every outer fold of a study shares."""

    experiment: Experiment
    data: ImageSet
    info: BackboneInfo
    splits: Splits
    tracker: Tracker
    storage: optuna.storages.BaseStorage
    study_run: Run
    # The prefix of the study's names in the Optuna storage: its searches and claims (runtime._names).
    prefix: str
    progress: bool = True
    # The nested estimate of the search metric (mean, ci_low, ci_high, n), for the final model's registration.
    estimate: dict[str, float] | None = None
    # Whether the final model is registered (<experiment>@final); a rerun logs it without moving the alias.
    register_model: bool = True
    # The images under the other intensity policies a search tried, by policy.
    _decoded: dict[str, ImageSet] = field(default_factory=dict, repr=False)

    def data_for(self, experiment: Experiment) -> ImageSet:
        """The study's images as ``experiment`` (a fit's concrete config) decodes them: its intensity
        policy may be a search space's value, each decoded once (through the image cache)."""
        from reproai.data._intensity import intensity_key

        key = intensity_key(experiment.data.intensity)
        if key not in self._decoded:
            self._decoded[key] = self.data.with_intensity(experiment.data.intensity)
        return self._decoded[key]

    @property
    def metric(self) -> str:
        return self.experiment.search.metric

    @property
    def direction(self) -> Direction:
        return as_direction(self.experiment.search.direction or metric_direction(self.metric))


def fold_tags(ctx: StudyContext, fold: OuterFold) -> dict[str, Any]:
    return {Tag.STUDY_ID: ctx.study_run.id, Tag.OUTER_FOLD: fold.tag, Tag.REPEAT: fold.repeat, Tag.WORKER: worker_id()}


def weights_sha256(model: nn.Module) -> str:
    """SHA-256 of a model's ``state_dict``: every entry's name, dtype, shape and bytes, in name order.
    Two fits with this digest equal trained bit-identical weights (and buffers: BatchNorm statistics)."""
    digest = hashlib.sha256()
    for name, value in sorted(model.state_dict().items()):
        if not isinstance(value, torch.Tensor):
            continue
        t = value.detach().cpu().contiguous().reshape(-1)  # 1-D: a 0-d tensor cannot change dtype by view
        digest.update(f"{name}|{t.dtype}|{tuple(value.shape)}|".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def log_fit(run: Run, data: ImageSet, result: FitResult, plan: FitPlan) -> None:
    """Log a fit's metrics, prediction tables and its plan (``fit.json``: what a rerun runs again), with
    the digest of its trained weights, which is what a rerun compares where there is no table."""
    metrics = {
        **{f"dev_{k}": v for k, v in result.dev_metrics.items()},
        **{f"test_{k}": v for k, v in result.test_metrics.items()},
    }
    if result.threshold is not None:
        metrics["threshold"] = result.threshold
    metrics.update(result.peak_memory)  # the fit's peak memory, MiB
    if result.compile_seconds is not None:
        metrics["compile_seconds"] = result.compile_seconds
    run.log_dict(
        {
            **plan.to_dict(),
            "threshold": result.threshold,
            "best_epochs": result.best_epochs,
            "weights_sha256": weights_sha256(result.model),
        },
        "fit.json",
    )
    tables = {
        f"predictions/{split}.json": preds.table(data, result.threshold)
        for split, preds in (("dev", result.dev), ("test", result.test))
        if preds is not None
    }
    run.log(metrics=metrics, tables=tables)


def is_trial_fault(e: BaseException) -> bool:
    """Whether an error fails only its trial: sampled parameters that cannot train (a batch larger
    than the training set, an optimizer refusing a value, running out of memory). A broken
    environment (tracking, storage, disk) or a stop request stops the study instead."""
    if isinstance(e, (TrackingError, DiskFullError)) or not isinstance(e, Exception):
        return False
    return isinstance(e, (ReproaiError, ValueError, RuntimeError, ArithmeticError))


def error_text(e: BaseException) -> str:
    if isinstance(e, ReproaiError):
        return str(e)
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


def run_fit(
    ctx: StudyContext,
    plan: FitPlan,
    parent: Run,
    tags: dict[str, Any],
    *,
    keep_model: bool = False,
    on_epoch: EpochCallback | None = None,
) -> FitResult:
    """Run ``plan`` as a tracked fit under ``parent``. The study needs its predictions and metrics; unless
    ``keep_model`` (a model to log), not its model: the model's backbone goes to the next fit
    (``result.model`` is left without one)."""
    experiment = plan.config(ctx.experiment)
    data = ctx.data_for(experiment)
    subsets = plan.subsets(ctx.splits)
    tags = {**tags, **plan.tags}
    with ctx.tracker.start_run(plan.run_name, tags={**tags, Tag.LEVEL: Level.FIT}, parent=parent) as run:
        run.log_params(
            {
                "seed": plan.seed,
                "kind": plan.kind,
                **{f"n_{k}": len(v) for k, v in vars(subsets).items() if v is not None},
            }
        )
        result = fit(
            experiment.model,
            experiment.training,
            data,
            ctx.info,
            subsets,
            options=plan.options(ctx.metric),
            hooks=FitHooks(tracker=ctx.tracker, parent=run, tags=tags, on_epoch=on_epoch, progress=ctx.progress),
        )
        log_fit(run, data, result, plan)
    if not experiment.training.compile and not keep_model:  # a compiled model keeps references to the backbone
        recycle_model(result.model, experiment.model)
    return result
