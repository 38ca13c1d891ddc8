"""The result of comparing k studies fold by fold (see :func:`reproai.analysis.compare`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

__all__ = ["Comparison"]


@dataclass
class Comparison:
    """k studies compared on one test metric, fold by fold.

    ``folds``: one row per outer fold (``repeat``, ``outer_fold``) and a column per study (its label);
    ``summary``: per study its mean, standard deviation, Nadeau-Bengio corrected 95% interval and mean rank
    (1 = best); ``pairs``: per pair the posterior probabilities of the Bayesian correlated t-test (and, for
    two studies, the corrected paired t-test in ``test``); ``friedman`` (k >= 3), ``nemenyi`` (p-values) and
    ``critical_difference`` (of mean ranks); ``verdict`` and ``caveats`` in words.
    """

    metric: str
    studies: list[str]
    labels: list[str]
    folds: pd.DataFrame
    summary: pd.DataFrame
    pairs: pd.DataFrame
    rope: float
    greater_is_better: bool
    critical_difference: float
    nemenyi: pd.DataFrame
    friedman: dict[str, float] | None
    test: dict[str, float] | None
    verdict: str
    caveats: list[str] = field(default_factory=list)
    figures: dict[str, bytes] = field(default_factory=dict, repr=False)
    out_dir: Path | None = None

    @property
    def a(self) -> str:
        return self.studies[0]

    @property
    def b(self) -> str:
        return self.studies[1]
