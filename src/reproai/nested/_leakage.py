"""The leakage check that runs on every split: no test index reaches training or model selection, and with
groups, no group straddles two parts of any split. It cannot be switched off."""

from __future__ import annotations

import numpy as np

from reproai.errors import LeakageError
from reproai.nested._folds import OuterFold, Splits

__all__ = ["check_splits"]


def _shared_group(groups: np.ndarray, a: np.ndarray, b: np.ndarray) -> str | None:
    """A group with examples in both ``a`` and ``b`` (index arrays), or None."""
    both = set(groups[a].tolist()) & set(groups[b].tolist())
    return sorted(both)[0] if both else None


def check_splits(splits: Splits) -> None:
    """Raise :class:`LeakageError` unless no test index reaches training or selection.

    Checked: each outer fold's test set is disjoint from its outer-train set and from every inner
    train and dev set; inner sets lie inside outer-train and do not overlap; with groups, no group has
    examples in two of train, dev and test, in any split, outer or inner; and within each repeat the test
    sets of several outer folds partition the data. This check cannot be switched off.
    """
    n = len(splits.ids)
    g = None if splits.groups is None else np.asarray(splits.groups, dtype=object)
    if g is not None and len(g) != n:
        raise LeakageError(f"the splits hold {len(g)} groups for {n} examples.")
    for f in splits.outer:
        where = f"outer fold {f.key}"
        test = set(f.test.tolist())
        train = set(f.train.tolist())
        if not test:
            raise LeakageError(f"{where}: the test set is empty.")
        if test & train:
            raise LeakageError(
                f"{where}: {len(test & train)} test index(es) are also in outer-train, e.g. {sorted(test & train)[:5]}."
            )
        if any(i < 0 or i >= n for i in test | train):
            raise LeakageError(f"{where}: indices outside 0..{n - 1}.")
        for j, inner in enumerate(f.inner):
            tr, dv = set(inner.train.tolist()), set(inner.dev.tolist())
            for name, part in (("train", tr), ("dev", dv)):
                if part & test:
                    raise LeakageError(
                        f"{where}, inner fold {j}: {len(part & test)} test index(es) are in the "
                        f"inner {name} set, e.g. {sorted(part & test)[:5]}. The test set must never "
                        "be seen by training or the search."
                    )
                if not part <= train:
                    raise LeakageError(f"{where}, inner fold {j}: the inner {name} set reaches outside outer-train.")
            if tr & dv:
                raise LeakageError(
                    f"{where}, inner fold {j}: {len(tr & dv)} index(es) are in both inner train and dev."
                )
        if g is not None:
            _check_groups(g, f, where)
    repeats: dict[int, list[OuterFold]] = {}
    for f in splits.outer:
        repeats.setdefault(f.repeat, []).append(f)
    for r, folds in repeats.items():
        if len(folds) > 1:
            tests = np.concatenate([f.test for f in folds])
            if len(tests) != len(set(tests.tolist())) or set(tests.tolist()) != set(range(n)):
                raise LeakageError(
                    f"repeat {r}: the outer test sets do not partition the data (each example must "
                    "be tested exactly once)."
                )


def _check_groups(groups: np.ndarray, fold: OuterFold, where: str) -> None:
    """Raise :class:`LeakageError`, naming the group, if any group straddles two parts of a split."""
    parts = [("outer-test", fold.test), ("outer-train", fold.train)]
    for j, inner in enumerate(fold.inner):
        parts += [(f"inner fold {j} train", inner.train), (f"inner fold {j} dev", inner.dev)]
    pairs = [(0, 1)] + [(a, b) for a in range(2, len(parts), 2) for b in (a + 1, 0)]
    for a, b in pairs:
        shared = _shared_group(groups, parts[a][1], parts[b][1])
        if shared is not None:
            raise LeakageError(
                f"{where}: group {shared!r} has examples in both {parts[a][0]} and {parts[b][0]} "
                f"({int(np.isin(parts[a][1], np.flatnonzero(groups == shared)).sum())} and "
                f"{int(np.isin(parts[b][1], np.flatnonzero(groups == shared)).sum())} of them). Images of one group "
                "(a patient, a subject) must all sit on one side of every split, or the score is inflated."
            )
