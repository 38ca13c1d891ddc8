"""Fit one split: train in phases with early stopping on dev data, fit a threshold, predict.

This is the unit of work that the study repeats for every inner fold of every trial and for every
outer-fold refit; it sees indices into one decoded :class:`~reproai.data.ImageSet`, never files.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import replace

import numpy as np
import torch
from torch import nn

from reproai.config._schema import Model, Phase, Training
from reproai.data._source import ImageSet
from reproai.errors import ConfigError, InvalidParamsError
from reproai.evaluation._metrics import compute_metrics, youden_threshold
from reproai.models._backbones import BackboneInfo, pretrained_identity
from reproai.models._network import create_model, enable_grad_checkpointing, model_parts, set_backbone_frozen
from reproai.tracking._tags import Level, Tag
from reproai.training._arguments import FitHooks, FitOptions, Subsets
from reproai.training._augment import make_augment
from reproai.training._batching import FeatureBatches, ImageBatches
from reproai.training._compilation import compile_seconds
from reproai.training._features import backbone_features
from reproai.training._losses import make_loss
from reproai.training._outputs import FitResult
from reproai.training._peak_memory import peak_memory
from reproai.training._phases import PhaseContext, params_if_cut_short, phase_params, train_phase
from reproai.training._runner import Batches, Forward, FrozenBackbone, Logits, Runner, predict, resolve_device
from reproai.training._seeding import configure_determinism, derive_seed

__all__ = ["fit"]


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
    subsets: Subsets,
    *,
    options: FitOptions | None = None,
    hooks: FitHooks | None = None,
) -> FitResult:
    """Train a fresh model on ``subsets.train`` in the phases of ``training``, and predict the dev and
    test subsets.

    With a dev set, each phase stops early on the dev metric (when it has a patience) and keeps its best
    epoch's weights, and the binary threshold is fitted on dev predictions (Youden's J). Without one,
    each phase trains ``options.epochs[i]`` epochs and ``options.threshold`` is used as given. Every
    random choice derives from ``options.seed``; on a CPU, the same seed gives the same predictions.
    With ``training.compile`` the returned model is the process's compiled module of its architecture,
    which the next fit of that architecture reuses: use it before then. The result also holds the fit's
    peak memory and, compiling, the seconds spent compiling.

    Raises :class:`~reproai.errors.ConfigError` for a training set under 2 examples and
    :class:`~reproai.errors.InvalidParamsError` for a batch larger than the training set.
    """
    options = options or FitOptions()
    hooks = hooks or FitHooks()
    device = resolve_device(training.device)
    hooks = replace(hooks, tags={**hooks.tags, **configure_determinism(training.deterministic, device)})
    n_train = len(subsets.train)
    if n_train < 2:
        raise ConfigError(f"The training set has {n_train} examples; a fit needs at least 2.")
    if training.batch_size > n_train:
        raise InvalidParamsError(
            f"training.batch_size={training.batch_size} is larger than the training set "
            f"({n_train} examples): every epoch would be one short batch. Use a smaller "
            "batch size (or narrow its search space)."
        )
    torch.manual_seed(derive_seed(options.seed, "init"))
    model = create_model(model_spec, data.num_classes).to(device)
    if training.grad_checkpointing:
        enable_grad_checkpointing(model, model_spec)
    compiling_before = compile_seconds() if training.compile else 0.0
    with peak_memory(device) as measured:
        result = _fit(model, device, model_spec, training, data, info, subsets, options, hooks)
    result.peak_memory = measured.metrics()
    if training.compile:
        result.compile_seconds = compile_seconds() - compiling_before
    return result


def _fit(
    model: nn.Module,
    device: torch.device,
    model_spec: Model,
    training: Training,
    data: ImageSet,
    info: BackboneInfo,
    subsets: Subsets,
    options: FitOptions,
    hooks: FitHooks,
) -> FitResult:
    runner = Runner(model, training, device, data.num_classes, model_spec)
    model = runner.model
    images = ImageBatches(data, info, device, channels_last=runner.channels_last)
    eval_bs = training.eval_batch_size or training.batch_size
    train, dev, test = (None if a is None else np.asarray(a) for a in (subsets.train, subsets.dev, subsets.test))
    assert train is not None  # a fit always has a training set
    ctx = PhaseContext(
        model=model,
        runner=runner,
        training=training,
        data=data,
        loss_fn=make_loss(training.loss, num_classes=data.num_classes, train_labels=data.labels[train]),
        subsets=Subsets(train, dev, test),
        options=options,
        hooks=hooks,
        generator=torch.Generator().manual_seed(derive_seed(options.seed, "order")),
        result=FitResult(model=model, threshold=options.threshold, dev=None, test=None),
    )
    augment = make_augment(training.augment)
    batches: Batches
    forward: Forward
    for p, phase in enumerate(training.phases):
        n_epochs = phase.epochs if options.epochs is None else int(options.epochs[p])
        if n_epochs <= 0:
            continue
        if _use_features(training, training.phases, p, model_spec):
            with runner.autocast():
                features = backbone_features(
                    model, model_spec, data, info, images, batch_size=eval_bs, progress=hooks.progress
                )
            parts = model_parts(model)
            assert parts is not None  # cached features are used for reproai's classifier only
            batches, forward = (
                FeatureBatches(features, data.labels, device),
                Logits(parts.head, data.num_classes, model_spec),
            )
        elif phase.freeze_backbone and not training.compile and (parts := model_parts(model)) is not None:
            # The frozen backbone runs without autograd (nothing of it is trained), the head with it.
            batches, forward = images, Logits(FrozenBackbone(parts), data.num_classes, model_spec)
        else:
            batches, forward = images, runner.full
        phase_tags = {**hooks.tags, Tag.LEVEL: Level.PHASE, Tag.PHASE: phase.name}
        params = phase_params(phase, n_epochs, training, batches)
        with (
            hooks.tracker.start_run(phase.name, tags=phase_tags, parent=hooks.parent)
            if hooks.tracker
            else nullcontext() as run,
            params_if_cut_short(run, params),
        ):
            train_phase(ctx, phase, n_epochs, batches, forward, augment, run, params)
    set_backbone_frozen(model, False)
    result = ctx.result
    if dev is not None and len(dev):
        result.dev = ctx.dev_preds or predict(runner.full, runner, data.num_classes, images, dev, eval_bs)
        if data.num_classes == 2 and options.threshold is None:
            result.threshold = youden_threshold(data.labels[dev], result.dev.proba)
        result.dev_metrics = compute_metrics(
            data.labels[dev], result.dev.proba, threshold=result.threshold, num_classes=data.num_classes
        )
    if test is not None and len(test):
        result.test = predict(runner.full, runner, data.num_classes, images, test, eval_bs)
        result.test_metrics = compute_metrics(
            data.labels[test], result.test.proba, threshold=result.threshold, num_classes=data.num_classes
        )
    return result
