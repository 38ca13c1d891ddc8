"""Analysis of tracked studies: metrics with confidence intervals, figures, reports, comparisons.

Everything returns pandas DataFrames; :func:`analyze` is what ``reproai analyze`` runs.
"""

from reproai.analysis._analyze import Analysis, GroupAnalysis, analyze, group_analysis, splits_summary
from reproai.analysis._compare import check_same_splits, compare
from reproai.analysis._comparison import Comparison
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
    "Analysis",
    "Comparison",
    "GroupAnalysis",
    "StudyData",
    "analyze",
    "bootstrap_pooled",
    "check_same_splits",
    "compare",
    "confusion",
    "corrected_paired_ttest",
    "corrected_t_interval",
    "density_figure",
    "fold_metrics",
    "group_analysis",
    "group_predictions",
    "load_study",
    "pr_figure",
    "rebuild_searches",
    "roc_figure",
    "splits_summary",
    "summarize_folds",
    "t_interval",
    "table_metrics",
]
