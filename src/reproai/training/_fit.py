"""Fit one split: train in phases with early stopping on dev data, fit a threshold, predict.

This is the unit of work that the study repeats for every inner fold of every trial and for every
outer-fold refit; it sees indices into one decoded :class:`~reproai.data.ImageSet`, never files.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from reproai.config._registry import describe
from reproai.config._schema import Model, Phase, Training
from reproai.data._source import ImageSet
from reproai.errors import ConfigError, InvalidParamsError
from reproai.evaluation._metrics import METRICS, compute_metrics, predict_labels, youden_threshold
from reproai.models._backbones import BackboneInfo, pretrained_identity
from reproai.models._network import (
    ModelParts,
    as_logits,
    backbone_eval,
    check_logits,
    create_model,
    enable_grad_checkpointing,
    model_parts,
    set_backbone_frozen,
)
from reproai.runtime import _stopping as stopping
from reproai.tracking import Run, Tracker
from reproai.tracking._tags import Level, Tag
from reproai.training._augment import Transform, make_augment
from reproai.training._batching import FeatureBatches, ImageBatches
from reproai.training._compilation import compile_seconds, compiled
from reproai.training._features import backbone_features
from reproai.training._losses import LossFn, make_loss
from reproai.training._optim import make_optimizer, make_schedule
from reproai.training._peak_memory import peak_memory
from reproai.training._seeding import configure_determinism, derive_seed

__all__ = ["Predictions", "FitResult", "fit", "resolve_device", "resolve_precision", "steps_per_epoch"]

EpochCallback = Callable[[int, dict[str, float]], None]
Forward = Callable[[torch.Tensor], torch.Tensor]
Batches = ImageBatches | FeatureBatches


@dataclass
class Predictions:
    """Model outputs on a subset: dataset indices, logits and probabilities."""

    index: np.ndarray
    logits: np.ndarray
    proba: np.ndarray  # (n,) P(class 1) for binary targets, (n, k) otherwise

    def table(self, data: ImageSet, threshold: float | None) -> pd.DataFrame:
        """One row per example: id (and group, when the data have groups), label, logit(s),
        probability(ies) and predicted class."""
        labels = data.labels[self.index]
        out: dict[str, Any] = {"id": [data.ids[i] for i in self.index]}
        if data.groups is not None:
            out["group"] = data.groups[self.index]
        out["label"] = labels
        if self.proba.ndim == 1:
            out["logit"] = self.logits
            out["probability"] = self.proba
        else:
            for k, name in enumerate(data.classes):
                out[f"probability_{name}"] = self.proba[:, k]
        out["predicted"] = predict_labels(self.proba, threshold)
        return pd.DataFrame(out)


@dataclass
class FitResult:
    """What one fit produced: the trained model, the threshold, predictions and the history."""

    model: nn.Module
    threshold: float | None
    dev: Predictions | None
    test: Predictions | None
    dev_metrics: dict[str, float] = field(default_factory=dict)
    test_metrics: dict[str, float] = field(default_factory=dict)
    best_epochs: dict[str, int] = field(default_factory=dict)
    history: list[dict[str, float | str]] = field(default_factory=list)  # per epoch: its phase, its metrics
    peak_memory: dict[str, float] = field(default_factory=dict)  # MiB: peak_rss_mib (and peak_cuda_mib)
    compile_seconds: float | None = None  # spent compiling during this fit (with training.compile)


def resolve_device(name: str) -> torch.device:
    """``"auto"`` picks CUDA when available, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(name)
    except RuntimeError as e:
        raise ConfigError(f"training.device={name!r} is not a valid device: {e}.") from e


def resolve_precision(name: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``training.precision`` on ``device``; None for full fp32."""
    if name == "fp32" or (name == "auto" and device.type != "cuda"):
        return None
    if name == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[name]


class _Logits:
    """A module's outputs as logits in reproai's convention (see :func:`reproai.models._network.as_logits`); the
    first batch's shape is checked, with an error that names the model."""

    def __init__(self, module: Forward, num_classes: int, spec: Model) -> None:
        self.module, self.num_classes, self.spec, self.checked = module, num_classes, spec, False

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = self.module(x)
        if not self.checked:
            check_logits(out, self.num_classes, self.spec)
            self.checked = True
        return as_logits(out, self.num_classes)


class _FrozenBackbone:
    """A model whose backbone is frozen: its features computed without autograd, then the head with it.
    The same outputs as the whole model (its declared ``head(backbone(x))``), without the bookkeeping
    (and without activation checkpointing's recomputation) for the part nothing trains."""

    def __init__(self, parts: ModelParts) -> None:
        self.parts = parts

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            features = self.parts.features(x)
        return self.parts.head(features)


class _Runner:
    """The forward pass of one fit: device, autocast, channels-last and optional compilation."""

    def __init__(
        self, model: nn.Module, training: Training, device: torch.device, num_classes: int, spec: Model
    ) -> None:
        self.device = device
        self.dtype = resolve_precision(training.precision, device)
        # Channels-last is faster for convolutions on GPUs and, through oneDNN, on CPUs too (about
        # 1.6x for efficientnet_lite0 on 2 cores: benchmarks/throughput.py).
        self.channels_last = training.channels_last is not False
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        forward: Forward = model
        if training.compile:  # one compilation per architecture and process, reused by every fit
            backend = training.compile if isinstance(training.compile, str) else "inductor"
            model, forward = compiled(model, extra=f"{device}|{self.channels_last}|{self.dtype}", backend=backend)
        self.model = model
        self.full: Forward = _Logits(forward, num_classes, spec)
        self.scaler = torch.amp.GradScaler(device.type) if self.dtype == torch.float16 else None

    def autocast(self) -> AbstractContextManager[Any]:
        if self.dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)


def steps_per_epoch(n_train: int, batch_size: int, *, skips_single: bool) -> int:
    """The optimizer steps of one epoch over ``n_train`` examples: one a batch, but none for a last batch
    of one example when ``skips_single`` (BatchNorm cannot train on it)."""
    full, last = divmod(n_train, batch_size)
    return full + (1 if last > 1 or (last == 1 and not skips_single) else 0)


@torch.inference_mode()  # no autograd bookkeeping at all; nothing of the pass outlives it but the outputs
def _predict(
    forward: Forward, runner: _Runner, num_classes: int, batches: Batches, index: np.ndarray, batch_size: int
) -> Predictions:
    runner.model.eval()
    logits = []
    for x, _, _ in batches(index, batch_size):
        stopping.check()
        with runner.autocast():
            logits.append(forward(x).float().cpu())
    z = torch.cat(logits) if logits else torch.empty(0, 1 if num_classes == 2 else num_classes)
    if num_classes == 2:
        z = z.squeeze(1)
        proba = torch.sigmoid(z)
    else:
        proba = torch.softmax(z, dim=1)
    return Predictions(index=np.asarray(index), logits=z.double().numpy(), proba=proba.double().numpy())


def _is_better(metric: str, new: float, best: float | None) -> bool:
    if math.isnan(new):
        return best is None
    if best is None or math.isnan(best):
        return True
    return new > best if METRICS[metric].greater_is_better else new < best


@dataclass
class _PhaseContext:
    """What every phase of one fit shares."""

    model: nn.Module
    runner: _Runner
    training: Training
    data: ImageSet
    train: np.ndarray
    dev: np.ndarray | None
    metric: str
    loss_fn: LossFn
    generator: torch.Generator
    result: FitResult
    progress: bool
    on_epoch: EpochCallback | None
    epochs_done: int = 0
    steps_done: int = 0
    dev_preds: Predictions | None = None  # dev predictions of the current weights, if known


def _phase_params(phase: Phase, n_epochs: int, training: Training, batches: Batches) -> dict[str, Any]:
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
def _params_if_cut_short(run: Run | None, params: dict[str, Any]) -> Iterator[None]:
    """Log a phase's ``params`` if it ends before its first epoch's metrics carried them."""
    try:
        yield
    except BaseException:
        if run is not None and params:
            with contextlib.suppress(Exception):  # the error that stopped the phase is the one to report
                run.log_params(params)
        raise


def _train_phase(
    ctx: _PhaseContext,
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

    model, training, data, dev = ctx.model, ctx.training, ctx.data, ctx.dev
    set_backbone_frozen(model, phase.freeze_backbone)
    optimizer = make_optimizer(phase, [q for q in model.parameters() if q.requires_grad])
    has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    skips_single = has_bn and not isinstance(batches, FeatureBatches)
    schedule = make_schedule(
        phase,
        optimizer,
        epochs=n_epochs,
        steps_per_epoch=steps_per_epoch(len(ctx.train), training.batch_size, skips_single=skips_single),
    )
    eval_bs = training.eval_batch_size or training.batch_size
    best, best_state, best_preds, best_epoch, waited = None, None, None, n_epochs, 0
    ctx.dev_preds = None
    bar = tqdm(range(n_epochs), desc=phase.name, unit="epoch", disable=not ctx.progress, leave=False)
    for epoch in bar:
        start = time.perf_counter()
        model.train()
        if phase.freeze_backbone:
            backbone_eval(model)  # keep the pretrained BatchNorm statistics
        total = torch.zeros((), device=ctx.runner.device)
        seen = 0
        steps = tqdm(
            batches(ctx.train, training.batch_size, augment=augment, generator=ctx.generator),
            total=math.ceil(len(ctx.train) / training.batch_size),
            desc=f"{phase.name} {epoch + 1}/{n_epochs}",
            unit="batch",
            disable=not ctx.progress,
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
            preds = _predict(forward, ctx.runner, data.num_classes, batches, dev, eval_bs)
            z = torch.from_numpy(preds.logits).float()
            with torch.no_grad():
                row["dev_loss"] = float(
                    ctx.loss_fn(z if z.ndim > 1 else z[:, None], torch.from_numpy(data.labels[dev]))
                )
            row[f"dev_{ctx.metric}"] = compute_metrics(
                data.labels[dev], preds.proba, names=[ctx.metric], num_classes=data.num_classes
            )[ctx.metric]
            if _is_better(ctx.metric, row[f"dev_{ctx.metric}"], best):
                best, best_epoch, waited, best_preds = row[f"dev_{ctx.metric}"], epoch + 1, 0, preds
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
            summary = {"best_epoch": best_epoch, **({f"best_dev_{ctx.metric}": best} if best is not None else {})}
            run.log(params=params, metrics={**row, **(summary if last else {})}, step=epoch + 1)
            params.clear()
        # Shown at the next redraw, not now: a bar written to a log file redraws at most every 30 s.
        bar.set_postfix({k: f"{v:.4f}" for k, v in row.items()}, refresh=False)
        if ctx.on_epoch is not None:
            ctx.on_epoch(ctx.epochs_done, row)
        ctx.epochs_done += 1
        if stop:
            break
    if best_preds is not None:
        if best_state is not None:
            model.load_state_dict(best_state)
        ctx.dev_preds = best_preds  # saves a pass over the dev set when this is the last phase
    ctx.result.best_epochs[phase.name] = best_epoch


def _use_features(training: Training, phases: Sequence[Phase], p: int, spec: Model) -> bool:
    """Whether phase ``p`` can train on cached features: its backbone is frozen and still at its
    starting weights (every phase before it was frozen too), nothing augments the images, and the
    starting weights are not random."""
    return (
        training.feature_cache
        and training.augment is None
        and pretrained_identity(spec) is not None
        and all(ph.freeze_backbone for ph in phases[: p + 1])
    )


def fit(
    model_spec: Model,
    training: Training,
    data: ImageSet,
    info: BackboneInfo,
    *,
    train: np.ndarray,
    dev: np.ndarray | None = None,
    test: np.ndarray | None = None,
    epochs: Sequence[int] | None = None,
    threshold: float | None = None,
    metric: str = "roc_auc",
    seed: int = 0,
    tracker: Tracker | None = None,
    parent: Run | None = None,
    tags: dict[str, str] | None = None,
    on_epoch: EpochCallback | None = None,
    progress: bool = True,
) -> FitResult:
    """Train a fresh model on ``train`` in the phases of ``training``, and predict ``dev`` and ``test``.

    With a dev set, each phase stops early on the dev ``metric`` (when it has a patience) and keeps
    its best epoch's weights, and the binary threshold is fitted on dev predictions (Youden's J).
    Without one, each phase trains ``epochs[i]`` epochs and ``threshold`` is used as given.
    ``on_epoch(i, row)`` is called after each epoch (it may raise to stop, e.g. to prune a trial).
    Every random choice derives from ``seed``; on a CPU, the same seed gives the same predictions.
    With ``training.compile`` the returned model is the process's compiled module of its architecture,
    which the next fit of that architecture reuses: use it before then. The result also holds the fit's
    peak memory and, compiling, the seconds spent compiling.
    """
    device = resolve_device(training.device)
    tags = {**(tags or {}), **configure_determinism(training.deterministic, device)}
    if len(train) < 2:
        raise ConfigError(f"The training set has {len(train)} examples; a fit needs at least 2.")
    if training.batch_size > len(train):
        raise InvalidParamsError(
            f"training.batch_size={training.batch_size} is larger than the training set "
            f"({len(train)} examples): every epoch would be one short batch. Use a smaller "
            "batch size (or narrow its search space)."
        )
    torch.manual_seed(derive_seed(seed, "init"))
    model = create_model(model_spec, data.num_classes).to(device)
    if training.grad_checkpointing:
        enable_grad_checkpointing(model, model_spec)
    compiling_before = compile_seconds() if training.compile else 0.0
    with peak_memory(device) as measured:
        result = _fit(
            model,
            model_spec,
            training,
            data,
            info,
            device,
            train=train,
            dev=dev,
            test=test,
            epochs=epochs,
            threshold=threshold,
            metric=metric,
            seed=seed,
            tracker=tracker,
            parent=parent,
            tags=tags,
            on_epoch=on_epoch,
            progress=progress,
        )
    result.peak_memory = measured.metrics()
    if training.compile:
        result.compile_seconds = compile_seconds() - compiling_before
    return result


def _fit(
    model: nn.Module,
    model_spec: Model,
    training: Training,
    data: ImageSet,
    info: BackboneInfo,
    device: torch.device,
    *,
    train: np.ndarray,
    dev: np.ndarray | None,
    test: np.ndarray | None,
    epochs: Sequence[int] | None,
    threshold: float | None,
    metric: str,
    seed: int,
    tracker: Tracker | None,
    parent: Run | None,
    tags: dict[str, str],
    on_epoch: EpochCallback | None,
    progress: bool,
) -> FitResult:
    runner = _Runner(model, training, device, data.num_classes, model_spec)
    model = runner.model
    images = ImageBatches(data, info, device, channels_last=runner.channels_last)
    eval_bs = training.eval_batch_size or training.batch_size
    ctx = _PhaseContext(
        model,
        runner,
        training,
        data,
        np.asarray(train),
        None if dev is None else np.asarray(dev),
        metric,
        make_loss(training.loss, num_classes=data.num_classes, train_labels=data.labels[np.asarray(train)]),
        torch.Generator().manual_seed(derive_seed(seed, "order")),
        FitResult(model=model, threshold=threshold, dev=None, test=None),
        progress,
        on_epoch,
    )
    augment = make_augment(training.augment)
    batches: Batches
    forward: Forward
    for p, phase in enumerate(training.phases):
        n_epochs = phase.epochs if epochs is None else int(epochs[p])
        if n_epochs <= 0:
            continue
        if _use_features(training, training.phases, p, model_spec):
            with runner.autocast():
                features = backbone_features(
                    model, model_spec, data, info, images, batch_size=eval_bs, progress=progress
                )
            parts = model_parts(model)
            assert parts is not None  # cached features are used for reproai's classifier only
            batches, forward = (
                FeatureBatches(features, data.labels, device),
                _Logits(parts.head, data.num_classes, model_spec),
            )
        elif phase.freeze_backbone and not training.compile and (parts := model_parts(model)) is not None:
            # The frozen backbone runs without autograd (nothing of it is trained), the head with it.
            batches, forward = images, _Logits(_FrozenBackbone(parts), data.num_classes, model_spec)
        else:
            batches, forward = images, runner.full
        phase_tags = {**(tags or {}), Tag.LEVEL: Level.PHASE, Tag.PHASE: phase.name}
        params = _phase_params(phase, n_epochs, training, batches)
        with (
            tracker.start_run(phase.name, tags=phase_tags, parent=parent) if tracker else nullcontext() as run,
            _params_if_cut_short(run, params),
        ):
            _train_phase(ctx, phase, n_epochs, batches, forward, augment, run, params)
    set_backbone_frozen(model, False)
    result = ctx.result
    if dev is not None and len(dev):
        result.dev = ctx.dev_preds or _predict(runner.full, runner, data.num_classes, images, np.asarray(dev), eval_bs)
        if data.num_classes == 2 and threshold is None:
            result.threshold = youden_threshold(data.labels[dev], result.dev.proba)
        result.dev_metrics = compute_metrics(
            data.labels[dev], result.dev.proba, threshold=result.threshold, num_classes=data.num_classes
        )
    if test is not None and len(test):
        result.test = _predict(runner.full, runner, data.num_classes, images, np.asarray(test), eval_bs)
        result.test_metrics = compute_metrics(
            data.labels[test], result.test.proba, threshold=result.threshold, num_classes=data.num_classes
        )
    return result
