"""Evaluation: metrics by name, the decision threshold, and the statistics of resampled estimates
(t-intervals, Nadeau-Bengio corrected intervals and paired test, the bootstrap)."""

from reproai.evaluation._bootstrap import bootstrap_metrics, weighted_metrics
from reproai.evaluation._metrics import (
    METRICS,
    Metric,
    compute_metrics,
    metric_bounds,
    metric_direction,
    predict_labels,
    youden_threshold,
)
from reproai.evaluation._stats import BOUNDS_NOTE, corrected_paired_ttest, corrected_t_interval, t_interval

__all__ = [
    "BOUNDS_NOTE",
    "METRICS",
    "Metric",
    "bootstrap_metrics",
    "compute_metrics",
    "corrected_paired_ttest",
    "corrected_t_interval",
    "metric_bounds",
    "metric_direction",
    "predict_labels",
    "t_interval",
    "weighted_metrics",
    "youden_threshold",
]
