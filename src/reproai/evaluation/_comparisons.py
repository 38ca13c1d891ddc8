"""Comparing k procedures evaluated on the same folds: ranks, the Friedman test, the Nemenyi critical
difference and post-hoc test, and the Bayesian correlated t-test with a region of practical equivalence.

References: J. Demšar, "Statistical comparisons of classifiers over multiple data sets", JMLR 7:1-30 (2006)
(Friedman, Nemenyi, the critical-difference diagram); A. Benavoli, G. Corani, J. Demšar, M. Zaffalon,
"Time for a change: a tutorial for comparing multiple classifiers through Bayesian analysis", JMLR
18(77):1-36 (2017) (the Bayesian correlated t-test, ROPE); C. Nadeau, Y. Bengio, "Inference for the
generalization error", Machine Learning 52:239-281 (2003) (the correction for overlapping training sets).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

__all__ = [
    "mean_ranks",
    "friedman_test",
    "nemenyi_critical_difference",
    "nemenyi_pvalues",
    "bayesian_correlated_ttest",
    "default_rope",
    "ROPES",
]

# The region of practical equivalence per metric, in the metric's units: differences smaller than this are
# taken to make no practical difference. Benavoli et al. (2017) use 0.01 (one percentage point) for accuracy;
# the same for the other scores in [0, 1]. The Brier score is a squared error, whose differences between
# good models are about half as large; log loss is in nats, where 0.02 is about 1% of the likelihood.
ROPES = {
    "roc_auc": 0.01,
    "roc_auc_micro": 0.01,
    "average_precision": 0.01,
    "accuracy": 0.01,
    "balanced_accuracy": 0.01,
    "f1": 0.01,
    "precision": 0.01,
    "recall": 0.01,
    "brier": 0.005,
    "log_loss": 0.02,
}


def default_rope(metric: str) -> float:
    """The default ROPE of ``metric`` (:data:`ROPES`; 0.01 for a metric not listed)."""
    return ROPES.get(metric, 0.01)


def mean_ranks(scores: np.ndarray, *, greater_is_better: bool = True) -> np.ndarray:
    """The mean rank of each of k procedures over n blocks (folds): ``scores`` is ``(n, k)``; rank 1 is the
    best in a block, ties share the mean of their ranks (Demšar 2006, section 3.2.2). Returns ``(k,)``."""
    x = np.asarray(scores, dtype=float)
    ranks = stats.rankdata(-x if greater_is_better else x, axis=1)
    return ranks.mean(axis=0)


def friedman_test(scores: np.ndarray) -> dict[str, float]:
    """The Friedman test that k >= 3 procedures perform alike over n blocks (``scores``: ``(n, k)``), through
    :func:`scipy.stats.friedmanchisquare`: the chi-square statistic, its ``k - 1`` degrees of freedom and the
    p-value. Raises ``ValueError`` with fewer than 3 procedures or 2 blocks."""
    x = np.asarray(scores, dtype=float)
    n, k = x.shape
    if k < 3 or n < 2:
        raise ValueError(f"The Friedman test needs at least 3 procedures and 2 folds, but got k={k}, n={n}.")
    result = stats.friedmanchisquare(*x.T)
    return {"statistic": float(result.statistic), "p_value": float(result.pvalue), "df": k - 1, "n": n}


def nemenyi_critical_difference(k: int, n: int, *, alpha: float = 0.05) -> float:
    """The critical difference of mean ranks for the Nemenyi test of k procedures over n blocks (Demšar 2006,
    eq. 5): ``q_alpha sqrt(k (k + 1) / (6 n))``, with ``q_alpha`` the studentized range quantile over sqrt 2."""
    q = stats.studentized_range.ppf(1 - alpha, k, math.inf) / math.sqrt(2)
    return float(q * math.sqrt(k * (k + 1) / (6 * n)))


def nemenyi_pvalues(scores: np.ndarray, names: list[str], *, greater_is_better: bool = True) -> pd.DataFrame:
    """The Nemenyi post-hoc test's p-value for each pair of procedures, ``(k, k)`` with ``names`` on both axes,
    through scikit-posthocs' ``posthoc_nemenyi_friedman`` (the ranks' direction does not change them)."""
    import scikit_posthocs as sp

    x = np.asarray(scores, dtype=float)
    p = sp.posthoc_nemenyi_friedman(x if greater_is_better else -x)
    p.index, p.columns = names, names
    return p


def bayesian_correlated_ttest(
    a: np.ndarray, b: np.ndarray, *, rope: float, runs: int = 1, greater_is_better: bool = True
) -> dict[str, float]:
    """The Bayesian correlated t-test of paired per-fold scores ``a`` and ``b`` (``(n,)`` each, ``runs``
    repeats of the same k-fold scheme), through ``baycomp.CorrelatedTTest``: the posterior probabilities
    that A is practically better, that they are practically equivalent (the mean difference within
    ``±rope``), and that B is practically better; with the posterior mean difference A - B (in the metric's
    units, "better" following ``greater_is_better``). The posterior is a Student t with the Nadeau-Bengio
    corrected variance (Benavoli et al. 2017, section 3). Raises ``ValueError`` with fewer than 2 folds."""
    import baycomp

    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(x) < 2 or len(x) != len(y):
        raise ValueError(f"The Bayesian correlated t-test needs paired scores of 2 folds or more, got {len(x)}.")
    if not greater_is_better:
        x, y = -x, -y
    if np.allclose(x, y):  # no spread: the posterior is a point at 0
        return {"p_a_better": 0.0, "p_equivalent": 1.0, "p_b_better": 0.0, "mean_difference": 0.0}
    mean, var, df = baycomp.CorrelatedTTest.compute_statistics(x, y, runs)  # mean of y - x
    if var <= 0:
        p_b = float(mean > rope)
        p_a = float(mean < -rope)
        return {"p_a_better": p_a, "p_equivalent": 1 - p_a - p_b, "p_b_better": p_b, "mean_difference": -mean}
    if rope > 0:
        p_a, p_eq, p_b = baycomp.CorrelatedTTest.probs(x, y, rope=rope, runs=runs)
    else:
        (p_a, p_b), p_eq = baycomp.CorrelatedTTest.probs(x, y, rope=0, runs=runs), 0.0
    sign = 1.0 if greater_is_better else -1.0
    return {
        "p_a_better": float(p_a),
        "p_equivalent": float(p_eq),
        "p_b_better": float(p_b),
        "mean_difference": float(-mean) * sign,
    }
