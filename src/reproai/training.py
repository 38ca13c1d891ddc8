"""Fit one split: train in phases with early stopping on dev data, fit a threshold, predict.

This is the unit of work that the study repeats for every inner fold of every trial and for every
outer-fold refit; it sees indices into one decoded :class:`~reproai.data.ImageSet`, never files.
"""

from __future__ import annotations

import copy
import math
from contextlib import nullcontext
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import nn

from reproai.config.schema import Model, Phase, Training
from reproai.data.datasets import ImageSet
from reproai.errors import ConfigError
from reproai.metrics import METRICS, compute_metrics, predict_labels, youden_threshold
from reproai.models import BackboneInfo, Classifier, create_model, set_backbone_frozen
from reproai.seeding import derive_seed
from reproai.tracking import TAG_PREFIX, Run, Tracker

__all__ = ["Predictions", "FitResult", "fit", "predict", "resolve_device", "make_augment"]


@dataclass
class Predictions:
    """Model outputs on a subset: dataset indices, logits and probabilities."""

    index: np.ndarray
    logits: np.ndarray
    proba: np.ndarray  # (n,) P(class 1) for binary targets, (n, k) otherwise

    def table(self, data: ImageSet, threshold: float | None) -> pd.DataFrame:
        """One row per example: id, label, logit(s), probability(ies) and predicted class."""
        labels = data.labels[self.index]
        out = {"id": [data.ids[i] for i in self.index], "label": labels}
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

    model: Classifier
    threshold: float | None
    dev: Predictions | None
    test: Predictions | None
    dev_metrics: dict[str, float] = field(default_factory=dict)
    test_metrics: dict[str, float] = field(default_factory=dict)
    best_epochs: dict[str, int] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)


def resolve_device(name: str) -> torch.device:
    """``"auto"`` picks CUDA when available, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(name)
    except RuntimeError as e:
        raise ConfigError(f"training.device={name!r} is not a valid device: {e}.") from e


def make_augment(name: str | None) -> nn.Module | None:
    """A per-image augmentation on uint8 CHW tensors (torchvision v2), or None."""
    if name is None:
        return None
    from torchvision.transforms import v2

    policy = {"flip": [], "autoaugment": [v2.AutoAugment()], "randaugment": [v2.RandAugment()],
              "trivialaugment": [v2.TrivialAugmentWide()]}[name]
    return v2.Compose([v2.RandomHorizontalFlip(), *policy])


class _Batches:
    """Batches of normalised float tensors from the decoded uint8 images, augmented on the fly."""

    def __init__(self, data: ImageSet, info: BackboneInfo, device: torch.device) -> None:
        self.images = torch.from_numpy(data.images).permute(0, 3, 1, 2)  # (n, 3, h, w) uint8, a view
        self.labels = torch.from_numpy(data.labels)
        self.device = device
        self.mean = torch.tensor(info.mean, device=device).view(1, 3, 1, 1) * 255.0
        self.std = torch.tensor(info.std, device=device).view(1, 3, 1, 1) * 255.0

    def __call__(self, index: np.ndarray, batch_size: int, *, augment: nn.Module | None = None,
                 generator: torch.Generator | None = None):
        order = torch.from_numpy(index)
        if generator is not None:
            order = order[torch.randperm(len(order), generator=generator)]
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            x = self.images[idx]
            if augment is not None:
                x = torch.stack([augment(img) for img in x])
            x = x.to(self.device, non_blocking=True).float()
            yield (x - self.mean) / self.std, self.labels[idx].to(self.device), idx.numpy()


def _loss_fn(num_classes: int):
    if num_classes == 2:
        bce = nn.BCEWithLogitsLoss()
        return lambda logits, y: bce(logits.squeeze(1), y.float())
    return nn.CrossEntropyLoss()


def _make_optimizer(phase: Phase, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    if phase.optimizer == "sgd":
        return torch.optim.SGD(params, lr=phase.lr, momentum=phase.momentum, weight_decay=phase.weight_decay)
    cls = torch.optim.AdamW if phase.optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=phase.lr, weight_decay=phase.weight_decay)


@torch.no_grad()
def predict(model: Classifier, batches: _Batches, index: np.ndarray, batch_size: int) -> Predictions:
    """Logits and probabilities of ``model`` on the examples ``index`` (in that order)."""
    model.eval()
    logits = []
    for x, _, _ in batches(index, batch_size):
        logits.append(model(x).float().cpu())
    z = torch.cat(logits) if logits else torch.empty(0, 1)
    if model.num_classes == 2:
        z = z.squeeze(1)
        proba = torch.sigmoid(z)
    else:
        proba = torch.softmax(z, dim=1)
    return Predictions(index=np.asarray(index), logits=z.double().numpy(), proba=proba.double().numpy())


def _score(metric: str, data: ImageSet, preds: Predictions) -> float:
    return compute_metrics(data.labels[preds.index], preds.proba, names=[metric], num_classes=data.num_classes)[metric]


def _is_better(metric: str, new: float, best: float | None) -> bool:
    if math.isnan(new):
        return best is None
    if best is None or math.isnan(best):
        return True
    return new > best if METRICS[metric].greater_is_better else new < best


def _train_phase(model: Classifier, phase: Phase, n_epochs: int, training: Training, batches: _Batches,
                 data: ImageSet, *, train: np.ndarray, dev: np.ndarray | None, metric: str, loss_fn, augment,
                 generator: torch.Generator, eval_bs: int, result: FitResult, run: Run | None,
                 progress: bool) -> None:
    """Train one phase; with dev data, stop early and restore the best epoch's weights."""
    from tqdm.auto import tqdm

    set_backbone_frozen(model, phase.freeze_backbone)
    optimizer = _make_optimizer(phase, [q for q in model.parameters() if q.requires_grad])
    scheduler = (torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=n_epochs)
                 if phase.scheduler == "cosine" else None)
    if run is not None:
        run.log_params({"phase": phase.name, "epochs": n_epochs, "lr": phase.lr,
                        "weight_decay": phase.weight_decay, "freeze_backbone": phase.freeze_backbone,
                        "optimizer": phase.optimizer, "early_stopping_patience": phase.early_stopping_patience,
                        "batch_size": training.batch_size, "augment": training.augment})
    has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    best, best_state, best_epoch, waited = None, None, n_epochs, 0
    bar = tqdm(range(n_epochs), desc=phase.name, unit="epoch", disable=not progress, leave=False)
    for epoch in bar:
        model.train()
        if phase.freeze_backbone:
            model.backbone.eval()  # keep the pretrained BatchNorm statistics
        total, seen = 0.0, 0
        steps = tqdm(batches(train, training.batch_size, augment=augment, generator=generator),
                     total=math.ceil(len(train) / training.batch_size),
                     desc=f"{phase.name} {epoch + 1}/{n_epochs}", unit="batch", disable=not progress, leave=False)
        for x, y, _ in steps:
            if len(y) < 2 and has_bn:
                continue  # BatchNorm cannot train on a batch of one
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(y)
            seen += len(y)
        if scheduler is not None:
            scheduler.step()
        row = {"train_loss": total / max(seen, 1)}
        if dev is not None and len(dev):
            preds = predict(model, batches, dev, eval_bs)
            z = torch.from_numpy(preds.logits).float()
            with torch.no_grad():
                row["dev_loss"] = float(loss_fn(z if z.ndim > 1 else z[:, None],
                                                torch.from_numpy(data.labels[preds.index])))
            row[f"dev_{metric}"] = _score(metric, data, preds)
            if _is_better(metric, row[f"dev_{metric}"], best):
                best, best_epoch, waited = row[f"dev_{metric}"], epoch + 1, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                waited += 1
        result.history.append({"phase": phase.name, "epoch": epoch + 1, **row})
        if run is not None:
            run.log_metrics(row, step=epoch + 1)
        bar.set_postfix({k: f"{v:.4f}" for k, v in row.items()})
        if phase.early_stopping_patience and dev is not None and waited >= phase.early_stopping_patience:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    result.best_epochs[phase.name] = best_epoch
    if run is not None:
        run.log_metrics({"best_epoch": best_epoch, **({f"best_dev_{metric}": best} if best is not None else {})})


def fit(model_spec: Model, training: Training, data: ImageSet, info: BackboneInfo, *,
        train: np.ndarray, dev: np.ndarray | None = None, test: np.ndarray | None = None,
        epochs: Sequence[int] | None = None, threshold: float | None = None,
        metric: str = "roc_auc", seed: int = 0, tracker: Tracker | None = None, parent: Run | None = None,
        tags: dict[str, str] | None = None, progress: bool = True) -> FitResult:
    """Train a fresh model on ``train`` in the phases of ``training``, and predict ``dev`` and ``test``.

    With a dev set, each phase stops early on the dev ``metric`` (when it has a patience) and keeps
    its best epoch's weights, and the binary threshold is fitted on dev predictions (Youden's J).
    Without one, each phase trains ``epochs[i]`` epochs and ``threshold`` is used as given.
    Every random choice derives from ``seed``; on a CPU, the same seed gives the same predictions.
    """
    device = resolve_device(training.device)
    torch.manual_seed(derive_seed(seed, "init"))
    model = create_model(model_spec, data.num_classes).to(device)
    batches = _Batches(data, info, device)
    loss_fn = _loss_fn(data.num_classes)
    augment = make_augment(training.augment)
    generator = torch.Generator().manual_seed(derive_seed(seed, "order"))
    eval_bs = training.eval_batch_size or training.batch_size
    if len(train) < training.batch_size and len(train) < 2:
        raise ConfigError(f"The training set has {len(train)} examples; a fit needs at least 2.")
    result = FitResult(model=model, threshold=threshold, dev=None, test=None)
    for p, phase in enumerate(training.phases):
        n_epochs = phase.epochs if epochs is None else int(epochs[p])
        if n_epochs <= 0:
            continue
        phase_tags = {**(tags or {}), f"{TAG_PREFIX}level": "phase", f"{TAG_PREFIX}phase": phase.name}
        with (tracker.start_run(phase.name, tags=phase_tags, parent=parent) if tracker else nullcontext()) as run:
            _train_phase(model, phase, n_epochs, training, batches, data, train=train, dev=dev, metric=metric,
                         loss_fn=loss_fn, augment=augment, generator=generator, eval_bs=eval_bs,
                         result=result, run=run, progress=progress)
    set_backbone_frozen(model, False)
    if dev is not None and len(dev):
        result.dev = predict(model, batches, dev, eval_bs)
        if data.num_classes == 2 and threshold is None:
            result.threshold = youden_threshold(data.labels[dev], result.dev.proba)
        result.dev_metrics = compute_metrics(data.labels[dev], result.dev.proba, threshold=result.threshold,
                                             num_classes=data.num_classes)
    if test is not None and len(test):
        result.test = predict(model, batches, test, eval_bs)
        result.test_metrics = compute_metrics(data.labels[test], result.test.proba, threshold=result.threshold,
                                              num_classes=data.num_classes)
    return result
