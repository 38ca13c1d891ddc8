"""Analysis of tracked studies: metrics with confidence intervals, figures, reports, comparisons.

Everything returns pandas DataFrames; :func:`analyze` is what ``reproai analyze`` runs.
"""

from reproai.analysis.analyze import Analysis, GroupAnalysis, analyze, group_analysis, splits_summary
from reproai.analysis.compare import Comparison, check_same_splits, compare
from reproai.analysis.evaluate import (
    bootstrap_pooled,
    confusion,
    fold_metrics,
    group_predictions,
    summarize_folds,
    table_metrics,
)
from reproai.analysis.load import StudyData, find_study, load_study
from reproai.analysis.search import rebuild_searches
from reproai.stats import corrected_paired_ttest, corrected_t_interval, t_interval

__all__ = [
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
    "find_study",
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
