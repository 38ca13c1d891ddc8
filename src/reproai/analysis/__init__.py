"""Analysis of tracked studies: metrics with confidence intervals, figures, reports, comparisons.

Everything returns pandas DataFrames; :func:`analyze` is what ``reproai analyze`` runs.
"""

from reproai.analysis._analyze import Analysis, GroupAnalysis, analyze, group_analysis, splits_summary
from reproai.analysis._compare import Comparison, check_same_splits, compare
from reproai.analysis._evaluate import (
    bootstrap_pooled,
    confusion,
    fold_metrics,
    group_predictions,
    summarize_folds,
    table_metrics,
)
from reproai.analysis._figures import density_figure, pr_figure, roc_figure
from reproai.analysis._load import StudyData, load_study
from reproai.analysis._searches import rebuild_searches
from reproai.evaluation._stats import corrected_paired_ttest, corrected_t_interval, t_interval

__all__ = [
    "roc_figure",
    "pr_figure",
    "density_figure",
    "analyze",
    "Analysis",
    "GroupAnalysis",
    "group_analysis",
    "group_predictions",
    "compare",
    "Comparison",
    "check_same_splits",
    "corrected_paired_ttest",
    "load_study",
    "StudyData",
    "fold_metrics",
    "table_metrics",
    "summarize_folds",
    "bootstrap_pooled",
    "confusion",
    "splits_summary",
    "rebuild_searches",
    "t_interval",
    "corrected_t_interval",
]
