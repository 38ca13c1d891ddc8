"""Field rules for the config schema: each takes a value and returns a problem or ``None``.

A rule is attached to a dataclass field through ``metadata={"check": rule}``; the validator applies
it to a plain value, and to the bounds or choices of a search space standing in that field.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

Check = Callable[[Any], "str | None"]


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_real(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def int_at_least(low: int, *, optional: bool = False) -> Check:
    def check(x: Any) -> str | None:
        if optional and x is None:
            return None
        if not _is_int(x) or x < low:
            return f"must be an integer >= {low}{' or None' if optional else ''}, but got {x!r}"
        return None

    return check


def real_in(
    low: float, high: float | None = None, *, low_open: bool = False, high_open: bool = False, optional: bool = False
) -> Check:
    lo, hi = ("(" if low_open else "["), (")" if high_open else "]")
    rng = f"{lo}{low}, {'inf' if high is None else high}{hi}"

    def check(x: Any) -> str | None:
        if optional and x is None:
            return None
        if not _is_real(x):
            return f"must be a number in {rng}, but got {x!r}"
        if (x < low or (low_open and x == low)) or (high is not None and (x > high or (high_open and x == high))):
            return f"must lie in {rng}, but got {x!r}"
        return None

    return check


def one_of(*allowed: Any) -> Check:
    def check(x: Any) -> str | None:
        if x not in allowed:
            import difflib

            close = difflib.get_close_matches(str(x), [str(a) for a in allowed], n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            return f"must be one of {list(allowed)!r}, but got {x!r}{hint}"
        return None

    return check


def is_bool(x: Any) -> str | None:
    return None if isinstance(x, bool) else f"must be True or False, but got {x!r}"


def non_empty_str(x: Any) -> str | None:
    return None if isinstance(x, str) and x.strip() else f"must be a non-empty string, but got {x!r}"


def optional_str(x: Any) -> str | None:
    return None if x is None else non_empty_str(x)


def bool_or_str(x: Any) -> str | None:
    return (
        None
        if isinstance(x, bool) or (isinstance(x, str) and x.strip())
        else (f"must be True, False or a non-empty string, but got {x!r}")
    )


def percentile_pair(x: Any) -> str | None:
    """Two percentiles ``(low, high)`` with ``0 <= low < high <= 100``."""
    if isinstance(x, (list, tuple)) and len(x) == 2 and all(_is_real(v) for v in x) and 0 <= x[0] < x[1] <= 100:
        return None
    return f"must be two percentiles (low, high) with 0 <= low < high <= 100, but got {x!r}"
