"""Analysis of tracked studies: statistics across folds."""

from reproai.analysis.stats import t_interval

__all__ = ["t_interval"]
