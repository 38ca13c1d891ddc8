"""Classification metrics by name, and the decision threshold fitted on dev data.

Probabilities are a vector of P(class 1) for binary targets and an (n, k) matrix otherwise. Each
metric is a function ``(y, proba, pred, k) -> float`` registered by name in the ``"metric"`` registry
(:mod:`reproai.config._registry`) with whether greater is better; register your own the same way.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
from sklearn import metrics as skm

from reproai.config._registry import registry

__all__ = [
    "Metric",
    "METRICS",
    "Direction",
    "compute_metrics",
    "youden_threshold",
    "predict_labels",
    "metric_direction",
    "metric_bounds",
    "as_direction",
]

Direction = Literal["maximize", "minimize"]


@dataclass(frozen=True)
class Metric:
    """A named metric: how to compute it and whether larger is better."""

    name: str
    fn: Callable[[np.ndarray, np.ndarray, np.ndarray, int], float]
    greater_is_better: bool = True


def _binary(proba: np.ndarray) -> bool:
    return proba.ndim == 1


def roc_auc(y: np.ndarray, proba: np.ndarray, pred: np.ndarray, k: int) -> float:
    if len(np.unique(y)) < 2:
        return float("nan")
    if _binary(proba):
        return skm.roc_auc_score(y, proba)
    if len(np.unique(y)) < k:
        return float("nan")
    return skm.roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=list(range(k)))


def average_precision(y: np.ndarray, proba: np.ndarray, pred: np.ndarray, k: int) -> float:
    if _binary(proba):
        return skm.average_precision_score(y, proba) if y.any() else float("nan")
    onehot = np.eye(k)[y]
    return skm.average_precision_score(onehot, proba, average="macro")


def log_loss(y: np.ndarray, proba: np.ndarray, pred: np.ndarray, k: int) -> float:
    p = np.column_stack([1 - proba, proba]) if _binary(proba) else proba
    return skm.log_loss(y, p, labels=list(range(p.shape[1])))


def brier(y: np.ndarray, proba: np.ndarray, pred: np.ndarray, k: int) -> float:
    if _binary(proba):
        return skm.brier_score_loss(y, proba)
    return float(np.mean(np.sum((proba - np.eye(k)[y]) ** 2, axis=1)))


def _averaged(fn: Callable[..., float]) -> Callable[[np.ndarray, np.ndarray, np.ndarray, int], float]:
    def metric(y: np.ndarray, proba: np.ndarray, pred: np.ndarray, k: int) -> float:
        average = "binary" if _binary(proba) else "macro"
        return fn(y, pred, average=average, zero_division=0, labels=None if _binary(proba) else list(range(k)))

    return metric


def accuracy(y: np.ndarray, proba: np.ndarray, pred: np.ndarray, k: int) -> float:
    return float(skm.accuracy_score(y, pred))


def balanced_accuracy(y: np.ndarray, proba: np.ndarray, pred: np.ndarray, k: int) -> float:
    return float(skm.balanced_accuracy_score(y, pred))


f1 = _averaged(skm.f1_score)
precision = _averaged(skm.precision_score)
recall = _averaged(skm.recall_score)


class _Metrics(Mapping[str, Metric]):
    """The registered metrics by name (a live view: metrics registered later are in it too)."""

    def __getitem__(self, name: str) -> Metric:
        entry = registry("metric").get(name)
        return Metric(name, entry.load(), bool(entry.meta.get("greater_is_better", True)))

    def __contains__(self, name: object) -> bool:
        # Mapping's own would call __getitem__, whose unknown-name ConfigError is not a KeyError.
        return name in registry("metric")

    def __iter__(self) -> Iterator[str]:
        return iter(registry("metric").names())

    def __len__(self) -> int:
        return len(registry("metric").names())


METRICS: Mapping[str, Metric] = _Metrics()


def metric_bounds(name: str) -> tuple[float, float] | None:
    """The range of a metric's values, as registered (``(0, 1)`` for ROC AUC); None if unknown.
    ``roc_auc_micro`` (analysis only) shares ROC AUC's."""
    metrics = registry("metric")
    key = "roc_auc" if name == "roc_auc_micro" else name
    if key not in metrics:
        return None
    bounds = metrics.get(key).meta.get("bounds")
    return (float(bounds[0]), float(bounds[1])) if bounds is not None else None


def metric_direction(name: str) -> Direction:
    """``"maximize"`` or ``"minimize"``, as Optuna spells it."""
    return "maximize" if METRICS[name].greater_is_better else "minimize"


def as_direction(value: str) -> Direction:
    """``value`` as an Optuna study direction; the ``ValueError`` Optuna raises for anything else."""
    if value == "maximize":
        return "maximize"
    if value == "minimize":
        return "minimize"
    raise ValueError(f"A study direction is 'maximize' or 'minimize', not {value!r}.")


def youden_threshold(y: np.ndarray, proba: np.ndarray) -> float:
    """The probability threshold that maximises Youden's J (sensitivity + specificity - 1) on ``y``
    (``(n,)`` 0/1) and ``proba`` (``(n,)``, of class 1): half-way between the lowest score that J keeps
    positive and the next lower score.

    Every threshold between two adjacent scores gives the same J; scikit-learn's ``roc_curve`` names the
    upper one, the score of an example itself, which a model refit on more data (whose scores move a
    little) would put on either side at random. With well-separated classes that score is often 0.9999,
    and a refit's positives at 0.998 would all be called negative.
    """
    y = np.asarray(y)
    if len(np.unique(y)) < 2:
        return 0.5  # J is undefined with one class; fall back to the neutral threshold.
    fpr, tpr, thresholds = skm.roc_curve(y, proba, drop_intermediate=False)
    best = int(np.argmax(tpr - fpr))
    if best == 0 or best + 1 >= len(thresholds):  # no score above it, or none below: the score itself
        return float(min(thresholds[best], 1.0))
    return float((thresholds[best] + thresholds[best + 1]) / 2.0)


def predict_labels(proba: np.ndarray, threshold: float | None = None) -> np.ndarray:
    """Class predictions: ``proba >= threshold`` for binary targets, the arg-max otherwise."""
    if _binary(proba):
        return (proba >= (0.5 if threshold is None else threshold)).astype(np.int64)
    return np.argmax(proba, axis=1).astype(np.int64)


def compute_metrics(
    y: np.ndarray,
    proba: np.ndarray,
    *,
    threshold: float | None = None,
    names: list[str] | None = None,
    num_classes: int | None = None,
    pred: np.ndarray | None = None,
) -> dict[str, float]:
    """Every metric in ``names`` (default: all) of predictions against labels ``y``.

    Class predictions come from ``threshold``, unless given as ``pred``.
    """
    y = np.asarray(y, dtype=np.int64)
    proba = np.asarray(proba, dtype=np.float64)
    k = 2 if _binary(proba) else (num_classes or proba.shape[1])
    pred = predict_labels(proba, threshold) if pred is None else np.asarray(pred, dtype=np.int64)
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns on degenerate folds; we return nan instead
        for name in names or list(METRICS):
            try:
                out[name] = float(METRICS[name].fn(y, proba, pred, k))
            except ValueError:
                out[name] = float("nan")
    return out
