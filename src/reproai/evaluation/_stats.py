"""Statistics across outer folds: mean, standard deviation and confidence intervals."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

__all__ = ["t_interval", "corrected_t_interval", "corrected_paired_ttest", "Bounds", "BOUNDS_NOTE"]


def _finite(values: Sequence[float] | np.ndarray) -> np.ndarray:
    return np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)


Bounds = tuple[float, float]

# How the report explains bounded intervals.
BOUNDS_NOTE = (
    "Intervals of a metric with a bounded range (ROC AUC, accuracy, ...: [0, 1]; log loss: [0, inf)) are "
    "truncated to that range, the simplest of the constructions for bounded parameters (Mandelkern, 2002, "
    "'Setting confidence intervals for bounded parameters', Statistical Science 17(2):149-172); a bound "
    "reached means the interval's raw end lay beyond it."
)


def t_interval(values: Sequence[float], *, confidence: float = 0.95, bounds: Bounds | None = None) -> dict[str, float]:
    """Mean, sample standard deviation and Student-t interval of per-fold scores.

    The plain t-interval treats folds as independent; they are not (their training sets overlap), so
    it is optimistic. With fewer than two finite values the interval is NaN.
    """
    return corrected_t_interval(values, test_train_ratio=0.0, confidence=confidence, bounds=bounds)


def corrected_t_interval(
    values: Sequence[float] | np.ndarray,
    *,
    test_train_ratio: float,
    confidence: float = 0.95,
    bounds: Bounds | None = None,
) -> dict[str, float]:
    """The Nadeau-Bengio corrected resampled t-interval of per-fold scores.

    The variance of the mean is ``s^2 (1/k + n_test/n_train)`` instead of ``s^2 / k``, which accounts
    for the overlap of the folds' training sets (Nadeau & Bengio, 2003); ``test_train_ratio=0`` gives
    the plain t-interval. ``bounds``: the metric's range, to which the interval is truncated (see
    :data:`BOUNDS_NOTE`).
    """
    x = _finite(values)
    n = len(x)
    mean = float(x.mean()) if n else float("nan")
    if n < 2:
        return {"mean": mean, "std": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"), "n": n}
    std = float(x.std(ddof=1))
    se = std * math.sqrt(1.0 / n + test_train_ratio)
    half = float(stats.t.ppf(0.5 + confidence / 2, df=n - 1)) * se
    low, high = mean - half, mean + half
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return {"mean": mean, "std": std, "ci_low": low, "ci_high": high, "n": n}


def corrected_paired_ttest(
    differences: Sequence[float], *, test_train_ratio: float, confidence: float = 0.95
) -> dict[str, float]:
    """The Nadeau-Bengio corrected resampled t-test of paired per-fold differences (A - B).

    ``t = mean(d) / (s_d * sqrt(1/k + n_test/n_train))`` with ``k - 1`` degrees of freedom, and the
    matching interval of the mean difference; the p-value is two-sided.
    """
    d = _finite(differences)
    k = len(d)
    out = corrected_t_interval(d, test_train_ratio=test_train_ratio, confidence=confidence)
    if k < 2:
        return {**out, "t": float("nan"), "df": k - 1, "p_value": float("nan")}
    se = out["std"] * math.sqrt(1.0 / k + test_train_ratio)
    t = (0.0 if out["mean"] == 0 else math.copysign(math.inf, out["mean"])) if se == 0 else out["mean"] / se
    return {**out, "t": t, "df": k - 1, "p_value": float(2 * stats.t.sf(abs(t), df=k - 1))}
