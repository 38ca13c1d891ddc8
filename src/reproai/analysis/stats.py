"""Statistics across outer folds: mean, standard deviation and confidence intervals."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

__all__ = ["t_interval"]


def t_interval(values: Sequence[float], *, confidence: float = 0.95) -> dict[str, float]:
    """Mean, sample standard deviation and Student-t interval of per-fold scores.

    The plain t-interval treats folds as independent; they are not (their training sets overlap), so
    it is optimistic. With fewer than two finite values the interval is NaN.
    """
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    n = len(x)
    mean = float(x.mean()) if n else float("nan")
    if n < 2:
        return {"mean": mean, "std": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"), "n": n}
    std = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, df=n - 1)) * std / math.sqrt(n)
    return {"mean": mean, "std": std, "ci_low": mean - half, "ci_high": mean + half, "n": n}
