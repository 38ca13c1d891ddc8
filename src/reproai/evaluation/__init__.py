"""Evaluation: metrics by name, the decision threshold, the statistics of resampled estimates (t-intervals,
Nadeau-Bengio corrected intervals and paired test, the bootstrap) and of comparisons of k procedures."""

from reproai.evaluation._bootstrap import bootstrap_metrics, weighted_metrics
from reproai.evaluation._comparisons import (
    ROPES,
    bayesian_correlated_ttest,
    default_rope,
    friedman_test,
    mean_ranks,
    nemenyi_critical_difference,
    nemenyi_pvalues,
)
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
    "ROPES",
    "Metric",
    "bayesian_correlated_ttest",
    "bootstrap_metrics",
    "compute_metrics",
    "corrected_paired_ttest",
    "corrected_t_interval",
    "default_rope",
    "friedman_test",
    "mean_ranks",
    "metric_bounds",
    "metric_direction",
    "nemenyi_critical_difference",
    "nemenyi_pvalues",
    "predict_labels",
    "t_interval",
    "weighted_metrics",
    "youden_threshold",
]
