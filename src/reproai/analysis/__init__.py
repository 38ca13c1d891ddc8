"""Analysis of tracked studies: statistics across folds."""

from reproai.analysis.stats import corrected_t_interval, t_interval

__all__ = ["t_interval", "corrected_t_interval"]
