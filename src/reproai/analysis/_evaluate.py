"""Metrics of prediction tables: per outer fold, across folds, and bootstrapped on pooled predictions.

A prediction table has one row per test example: ``label`` (class index), ``predicted`` (the class at
the threshold fitted on dev data), and ``probability`` (binary: P(class 1)) or ``probability_<class>``
columns (multi-class), as :meth:`reproai.training._fit.Predictions.table` writes it.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from reproai.errors import ReproaiError
from reproai.evaluation._bootstrap import bootstrap_metrics
from reproai.evaluation._metrics import compute_metrics, metric_bounds
from reproai.evaluation._stats import corrected_t_interval, t_interval

__all__ = [
    "BINARY_METRICS",
    "MULTICLASS_METRICS",
    "prediction_arrays",
    "table_metrics",
    "fold_metrics",
    "summarize_folds",
    "bootstrap_pooled",
    "confusion",
    "group_predictions",
]

BINARY_METRICS = [
    "roc_auc",
    "average_precision",
    "accuracy",
    "balanced_accuracy",
    "f1",
    "precision",
    "recall",
    "log_loss",
    "brier",
]
MULTICLASS_METRICS = ["roc_auc", "roc_auc_micro", *BINARY_METRICS[1:]]
_FOLD_KEYS = ["repeat", "outer_fold"]


def prediction_arrays(table: pd.DataFrame, classes: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels, probabilities (a vector when binary, else an (n, k) matrix) and predicted classes."""
    missing = [c for c in ("label", "predicted") if c not in table.columns]
    if "probability" in table.columns:
        proba = table["probability"].to_numpy(np.float64)
    else:
        columns = [f"probability_{c}" for c in classes]
        missing += [c for c in columns if c not in table.columns]
        proba = None if missing else table[columns].to_numpy(np.float64)
    if missing:
        raise ReproaiError(
            f"The prediction table lacks the column(s) {missing}; it has {list(table.columns)}. "
            "Was it written by reproai?"
        )
    return table["label"].to_numpy(np.int64), proba, table["predicted"].to_numpy(np.int64)


def _roc_auc_micro(y: np.ndarray, proba: np.ndarray) -> float:
    onehot = np.eye(proba.shape[1])[y]
    return float(skm.roc_auc_score(onehot, proba, average="micro"))


def table_metrics(table: pd.DataFrame, classes: Sequence[str]) -> dict[str, float]:
    """Every analysis metric of one prediction table, at the predicted classes it holds."""
    y, proba, pred = prediction_arrays(table, classes)
    return _metrics(y, proba, pred, len(classes))


def _metrics(y: np.ndarray, proba: np.ndarray, pred: np.ndarray, k: int) -> dict[str, float]:
    binary = proba.ndim == 1
    out = compute_metrics(y, proba, pred=pred, names=BINARY_METRICS, num_classes=k)
    if not binary:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                out["roc_auc_micro"] = _roc_auc_micro(y, proba)
            except ValueError:
                out["roc_auc_micro"] = float("nan")
        out = {name: out[name] for name in MULTICLASS_METRICS}
    return out


def fold_metrics(predictions: pd.DataFrame, classes: Sequence[str]) -> pd.DataFrame:
    """One row per outer fold (``repeat``, ``outer_fold``, ``n``) with every metric."""
    rows = []
    for (repeat, fold), table in predictions.groupby(_FOLD_KEYS, sort=True):
        rows.append({"repeat": int(repeat), "outer_fold": int(fold), "n": len(table), **table_metrics(table, classes)})
    return pd.DataFrame(rows)


def summarize_folds(folds: pd.DataFrame, *, test_train_ratio: float, confidence: float = 0.95) -> pd.DataFrame:
    """Per metric across outer folds: mean, std, the Nadeau-Bengio corrected interval (``ci_*``) and
    the plain Student-t interval (``t_ci_*``), both truncated to the metric's range (see
    :data:`reproai.evaluation._stats.BOUNDS_NOTE`)."""
    rows = []
    for name in [c for c in folds.columns if c not in (*_FOLD_KEYS, "n")]:
        values = folds[name].tolist()
        bounds = metric_bounds(name)
        corrected = corrected_t_interval(
            values, test_train_ratio=test_train_ratio, confidence=confidence, bounds=bounds
        )
        plain = t_interval(values, confidence=confidence, bounds=bounds)
        rows.append({"metric": name, **corrected, "t_ci_low": plain["ci_low"], "t_ci_high": plain["ci_high"]})
    return pd.DataFrame(rows).set_index("metric")


def bootstrap_pooled(
    predictions: pd.DataFrame,
    classes: Sequence[str],
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Each metric on the pooled out-of-fold predictions, with a percentile bootstrap interval.

    Examples are resampled with replacement; the interval reflects the finite test set, not the
    variation between training sets, which the interval over outer folds covers.
    """
    y, proba, pred = prediction_arrays(predictions, classes)
    names = BINARY_METRICS if proba.ndim == 1 else MULTICLASS_METRICS
    point = _metrics(y, proba, pred, len(classes))
    low, high = bootstrap_metrics(
        y, proba, pred, names, k=len(classes), n_resamples=n_resamples, confidence=confidence, seed=seed
    )
    return pd.DataFrame(
        {"metric": names, "pooled": [point[n] for n in names], "boot_low": low, "boot_high": high, "n": len(y)}
    ).set_index("metric")


def group_predictions(
    predictions: pd.DataFrame, classes: Sequence[str], thresholds: dict[tuple[int, int], float] | None = None
) -> pd.DataFrame:
    """Predictions at the group level (a patient, a subject), as per-patient results are reported: one row
    per group and outer fold, whose probability is the mean of its images' probabilities (per class,
    for several classes), and whose predicted class is that mean at the fold's threshold (fitted on dev
    images; ``thresholds`` by ``(repeat, outer_fold)``, 0.5 where missing) or its arg-max. The ``id`` is
    the group; ``n_images`` counts its images.

    Raises:
        ReproaiError: the predictions have no ``group`` column, or a group's images carry different labels.
    """
    if "group" not in predictions.columns:
        raise ReproaiError(
            "The predictions have no `group` column: the study's data had no groups (set data.group "
            "for a table, or data.group_pattern for an image folder)."
        )
    mixed = predictions.groupby("group")["label"].nunique()
    if (mixed > 1).any():
        shown = mixed[mixed > 1].index.tolist()[:5]
        raise ReproaiError(
            f"{int((mixed > 1).sum())} group(s) have images of different classes (e.g. {shown}); a "
            "group-level label is undefined. Group-level metrics need one class per group."
        )
    columns = ["probability"] if "probability" in predictions.columns else [f"probability_{c}" for c in classes]
    keys = [*_FOLD_KEYS, "group"]
    grouped = predictions.groupby(keys, sort=True)
    out = grouped[columns].mean().reset_index()
    out["label"] = grouped["label"].first().to_numpy()
    out["n_images"] = grouped.size().to_numpy()
    if columns == ["probability"]:
        cut = [
            (thresholds or {}).get((int(r), int(f)), 0.5) for r, f in zip(out["repeat"], out["outer_fold"], strict=True)
        ]
        out["predicted"] = (out["probability"].to_numpy() >= np.asarray(cut)).astype(np.int64)
    else:
        out["predicted"] = np.argmax(out[columns].to_numpy(), axis=1).astype(np.int64)
    return out.assign(id=out["group"])[["id", *keys, "n_images", "label", *columns, "predicted"]]


def confusion(predictions: pd.DataFrame, classes: Sequence[str]) -> pd.DataFrame:
    """The confusion matrix of the pooled predictions (rows: true class, columns: predicted class)."""
    y, _, pred = prediction_arrays(predictions, classes)
    matrix = skm.confusion_matrix(y, pred, labels=list(range(len(classes))))
    return pd.DataFrame(
        matrix, index=pd.Index(list(classes), name="true"), columns=pd.Index(list(classes), name="predicted")
    )
