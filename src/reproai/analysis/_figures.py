"""Figures of a study: curves per outer fold, probability densities, calibration, confusion, and the
search. Each function returns a matplotlib ``Figure`` (no global pyplot state, except around Optuna's
plots, which use pyplot and are closed by :func:`optuna_figures`).

Multi-class studies get one-vs-rest curves pooled over classes (micro-averaged).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve

from reproai.analysis._evaluate import prediction_arrays

if TYPE_CHECKING:
    import optuna
    from pandas.api.typing import DataFrameGroupBy  # pandas >= 2.1

__all__ = [
    "roc_figure",
    "pr_figure",
    "density_figure",
    "calibration_figure",
    "confusion_figure",
    "params_figure",
    "optuna_figures",
]

_GRID = np.linspace(0.0, 1.0, 101)


def _folds(predictions: pd.DataFrame) -> DataFrameGroupBy:
    return predictions.groupby(["repeat", "outer_fold"], sort=True)


def _scores(table: pd.DataFrame, classes: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Binary targets and scores: P(class 1), or one-vs-rest pooled over classes when multi-class."""
    y, proba, _ = prediction_arrays(table, classes)
    if proba.ndim == 1:
        return y, proba
    return np.eye(len(classes))[y].ravel(), proba.ravel()


def _label(key: tuple[int, int], repeats: int) -> str:
    return f"fold {key[1]}" if repeats == 1 else f"repeat {key[0]} fold {key[1]}"


def _band(ax: Axes, x: np.ndarray, curves: list[np.ndarray], label: str) -> None:
    mean, std = np.mean(curves, axis=0), np.std(curves, axis=0)
    ax.plot(x, mean, color="black", lw=2, label=label)
    if len(curves) > 1:
        ax.fill_between(
            x, np.clip(mean - std, 0, 1), np.clip(mean + std, 0, 1), color="grey", alpha=0.3, label="± 1 std over folds"
        )


def _roc(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    fpr, tpr, _ = skm.roc_curve(y, s)
    on_grid = np.interp(_GRID, fpr, tpr)
    on_grid[0] = 0.0
    return fpr, tpr, on_grid, float(skm.auc(fpr, tpr))


def _pr(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    precision, recall, _ = skm.precision_recall_curve(y, s)
    return recall, precision, np.interp(_GRID, recall[::-1], precision[::-1]), float(skm.average_precision_score(y, s))


_Curve = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray, float]]


def _fold_curves(
    ax: Axes, predictions: pd.DataFrame, classes: Sequence[str], curve: _Curve, score: str, drawstyle: str
) -> list[float]:
    """Draw ``curve`` (x, y, y on the common grid, its score) for each outer fold, then their mean and a
    ±1 std band; returns the folds' scores."""
    repeats = predictions["repeat"].nunique()
    curves, scores = [], []
    for key, table in _folds(predictions):
        x, y, on_grid, value = curve(*_scores(table, classes))
        scores.append(value)
        ax.plot(x, y, lw=1, alpha=0.6, drawstyle=drawstyle, label=f"{_label(key, repeats)} ({score} {value:.3f})")
        curves.append(on_grid)
    spread = f" ± {np.std(scores):.3f}" if score == "AUC" else ""
    _band(ax, _GRID, curves, f"mean ({score} {np.mean(scores):.3f}{spread})")
    return scores


def roc_figure(predictions: pd.DataFrame, classes: Sequence[str]) -> Figure:
    """ROC curve of each outer fold, their mean and a ±1 std band."""
    fig = Figure(figsize=(6, 5))
    ax = fig.subplots()
    _fold_curves(ax, predictions, classes, _roc, "AUC", "default")
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1)
    micro = " (one-vs-rest, micro)" if len(classes) > 2 else ""
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=f"ROC per outer fold{micro}")
    ax.legend(loc="lower right", fontsize="small")
    return fig


def pr_figure(predictions: pd.DataFrame, classes: Sequence[str]) -> Figure:
    """Precision-recall curve of each outer fold and their mean."""
    fig = Figure(figsize=(6, 5))
    ax = fig.subplots()
    _fold_curves(ax, predictions, classes, _pr, "AP", "steps-post")
    ax.set(xlabel="recall", ylabel="precision", ylim=(0, 1.02), title="Precision-recall per outer fold")
    ax.legend(loc="lower left", fontsize="small")
    return fig


def density_figure(predictions: pd.DataFrame, classes: Sequence[str]) -> Figure:
    """The predicted probability, per true class (binary: P(class 1); multi-class: P(true class))."""
    y, proba, _ = prediction_arrays(predictions, classes)
    binary = proba.ndim == 1
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    bins = np.linspace(0, 1, 41).tolist()  # matplotlib's stubs take a sequence, not an array
    for c, name in enumerate(classes):
        values = proba[y == c] if binary else proba[y == c, c]
        if len(values):
            ax.hist(values, bins=bins, density=True, histtype="step", lw=1.5, label=f"{name} (n={len(values)})")
    what = f"P({classes[1]})" if binary else "P(true class)"
    ax.set(xlabel=f"predicted {what}", ylabel="density", title="Predicted probability by true class (pooled test)")
    ax.legend(fontsize="small", ncol=2 if len(classes) > 4 else 1)
    return fig


def calibration_figure(predictions: pd.DataFrame, classes: Sequence[str], *, n_bins: int = 10) -> Figure:
    """Reliability diagram of the pooled test predictions (multi-class: top-label confidence)."""
    y, proba, pred = prediction_arrays(predictions, classes)
    if proba.ndim == 1:
        target, confidence, what = y, proba, f"P({classes[1]})"
    else:
        target, confidence, what = (pred == y).astype(int), proba.max(axis=1), "top-label confidence"
    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        observed, expected = calibration_curve(target, confidence, n_bins=n_bins, strategy="quantile")
    ax.plot(expected, observed, marker="o", label="pooled test predictions")
    ax.plot([0, 1], [0, 1], ls="--", color="grey", label="perfectly calibrated")
    ax.set(xlabel=f"mean predicted {what}", ylabel="observed frequency", title="Calibration (quantile bins)")
    ax.legend(loc="upper left", fontsize="small")
    return fig


def confusion_figure(matrix: pd.DataFrame) -> Figure:
    """The pooled confusion matrix at the thresholds fitted on dev data."""
    n = len(matrix)
    fig = Figure(figsize=(max(4, 0.5 * n + 2), max(4, 0.5 * n + 1.5)))
    ax = fig.subplots()
    skm.ConfusionMatrixDisplay(matrix.to_numpy(), display_labels=list(matrix.index)).plot(ax=ax, colorbar=False)
    ax.set_title("Confusion matrix (pooled test, fitted threshold)")
    return fig


def params_figure(best_params: pd.DataFrame) -> Figure | None:
    """The hyperparameters chosen in each outer fold: how stable the search was."""
    names = [c for c in best_params.columns if c not in ("repeat", "outer_fold")]
    if not names:
        return None
    fig = Figure(figsize=(4 * min(len(names), 3), 3 * ((len(names) + 2) // 3)), layout="constrained")
    axes = np.atleast_1d(fig.subplots((len(names) + 2) // 3, min(len(names), 3), squeeze=False)).ravel()
    x = [
        f"{r}/{f}" if best_params["repeat"].nunique() > 1 else str(f)
        for r, f in zip(best_params["repeat"], best_params["outer_fold"], strict=True)
    ]
    for ax, name in zip(axes, names, strict=False):  # more axes than names in a last row
        values = best_params[name]
        if pd.api.types.is_numeric_dtype(values) and values.nunique() > 1 and not pd.api.types.is_bool_dtype(values):
            ax.plot(x, values, marker="o", ls="")
            if values.min() > 0 and values.max() / values.min() > 20:
                ax.set_yscale("log")
        else:
            ax.plot(x, values.astype(str), marker="o", ls="")
        ax.set(title=name, xlabel="outer fold")
        ax.title.set_fontsize("small")
    for ax in axes[len(names) :]:
        ax.set_visible(False)
    fig.suptitle("Chosen hyperparameters per outer fold")
    return fig


def _figure_of(ax: Axes) -> Figure:
    """The figure an Optuna plot drew on (always a top-level pyplot figure, never a subfigure)."""
    fig = ax.figure
    assert isinstance(fig, Figure)
    return fig


def optuna_figures(study: optuna.Study, *, title: str = "") -> dict[str, Figure]:
    """Optuna's optimisation history and parameter importances of one outer fold's search."""
    import matplotlib.pyplot as plt
    import optuna
    import optuna.visualization.matplotlib as ov

    out: dict[str, Figure] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
        out["history"] = _figure_of(ov.plot_optimization_history(study))
        if len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))) >= 2:
            try:
                evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
                out["importances"] = _figure_of(ov.plot_param_importances(study, evaluator=evaluator))
            except (ValueError, RuntimeError):  # e.g. no parameter ever varied: no importances to show
                pass
    for fig in out.values():
        fig.set_size_inches(7, 4.5)
        if title:
            fig.axes[0].set_title(f"{fig.axes[0].get_title()}, {title}")
        fig.tight_layout()
    plt.close("all")  # the figures stay usable; pyplot just forgets them
    return out
