"""Nested, stratified, seeded splits: made from the labels, or with test sets a file gives, and the final fold.

Splits are pure functions of (labels, groups, settings, seed) and hold index arrays into the dataset,
never copies of the data. With groups (patients, subjects, lesions, sites), every split, outer and inner,
keeps each group on one side: scikit-learn's ``StratifiedGroupKFold`` for folds, a stratified split of
groups for the single hold-outs; the leakage check (``_leakage``) asserts it on every split.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, train_test_split

from reproai.config._schema import CrossValidation
from reproai.errors import DataError
from reproai.nested._folds import InnerFold, OuterFold, Splits
from reproai.nested._leakage import _check_groups, check_splits
from reproai.training._seeding import derive_seed

__all__ = [
    "make_splits",
    "splits_from_file",
    "final_fold",
    "has_final_stage",
]


def _too_few_groups(index: np.ndarray, labels: np.ndarray, groups: np.ndarray, k: int, what: str) -> None:
    """Raise a :class:`DataError` with the numbers when a class has fewer groups than ``k``."""
    per_class = {int(c): len(set(groups[index][labels[index] == c])) for c in np.unique(labels[index])}
    few = {c: n for c, n in per_class.items() if n < k}
    if few:
        raise DataError(
            f"Cannot make {k} group-disjoint {what} folds: class(es) {sorted(few)} have only "
            f"{', '.join(str(n) for n in few.values())} group(s) among these {len(index)} examples (groups per "
            f"class: {per_class}), and each fold needs every class. Use at most {min(per_class.values())} folds, "
            "more groups, or merge rare classes."
        )


def _holdout(
    index: np.ndarray, labels: np.ndarray, size: float, seed: int, what: str, groups: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    if groups is not None:
        # A stratified split of groups: one fold of StratifiedGroupKFold with about 1/size folds.
        k = max(2, round(1 / size))
        _too_few_groups(index, labels, groups, 2, what)
        sgkf = StratifiedGroupKFold(n_splits=min(k, len(set(groups[index]))), shuffle=True, random_state=seed)
        a, b = next(sgkf.split(index, labels[index], groups[index]))
        return np.sort(index[a]), np.sort(index[b])
    try:
        a, b = train_test_split(index, test_size=size, random_state=seed, stratify=labels[index])
    except ValueError as e:
        raise DataError(
            f"Cannot hold out a stratified {what} set of {size:.0%} from {len(index)} examples: {e}. "
            "Use more data, or fewer/larger folds."
        ) from e
    return np.sort(a), np.sort(b)


def _kfold(
    index: np.ndarray, labels: np.ndarray, k: int, seed: int, what: str, groups: np.ndarray | None = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    if groups is not None:
        _too_few_groups(index, labels, groups, k, what)
        sgkf = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
        return [(index[a], index[b]) for a, b in sgkf.split(index, labels[index], groups[index])]
    counts = np.bincount(labels[index])
    smallest = counts[counts > 0].min()
    if smallest < k:
        raise DataError(
            f"Cannot make {k} stratified {what} folds: the smallest class has only {smallest} "
            f"example(s) among these {len(index)}. Use at most {smallest} folds, or more data."
        )
    skf = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    return [(index[a], index[b]) for a, b in skf.split(index, labels[index])]


def make_splits(
    labels: np.ndarray,
    cv: CrossValidation,
    *,
    seed: int,
    ids: Sequence[str] | None = None,
    groups: Sequence[str] | None = None,
) -> Splits:
    """Stratified outer folds (or one holdout test set), each with stratified inner folds; with
    ``groups``, every one of them group-disjoint."""
    labels = np.asarray(labels)
    g = None if groups is None else np.asarray(groups, dtype=object)
    index = np.arange(len(labels))
    root = cv.seed if cv.seed is not None else seed
    outer: list[OuterFold] = []
    for r in range(cv.repeats):
        s = derive_seed(root, "outer", r)
        if cv.outer_folds == 1:
            pairs = [_holdout(index, labels, cv.test_size, s, "test", g)]
        else:
            pairs = _kfold(index, labels, cv.outer_folds, s, "outer", g)
        for k, (train, test) in enumerate(pairs):
            inner = _inner_folds(np.sort(train), labels, cv, derive_seed(root, "inner", r, k), g)
            outer.append(OuterFold(r, k, np.sort(train), np.sort(test), inner))
    splits = Splits(
        outer=outer,
        ids=list(ids) if ids is not None else [str(i) for i in index],
        groups=None if g is None else [str(x) for x in g],
    )
    check_splits(splits)
    return splits


def _inner_folds(
    train: np.ndarray, labels: np.ndarray, cv: CrossValidation, seed: int, groups: np.ndarray | None = None
) -> list[InnerFold]:
    if cv.inner_folds == 1:
        return [InnerFold(*_holdout(train, labels, cv.dev_size, seed, "dev", groups))]
    return [InnerFold(np.sort(a), np.sort(b)) for a, b in _kfold(train, labels, cv.inner_folds, seed, "inner", groups)]


def splits_from_file(
    path: str | Path,
    labels: np.ndarray,
    cv: CrossValidation,
    *,
    seed: int,
    ids: Sequence[str],
    groups: Sequence[str] | None = None,
) -> Splits:
    """Outer folds whose test sets a file gives (see ``CrossValidation.splits_file``), by example ids
    or, with groups, by group (JSON ``{"outer": [{"test_groups": [...]}, ...]}``, or a text file whose
    lines name groups); inner folds computed."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"cv.splits_file={str(path)!r} does not exist.")
    text = path.read_text()
    by_group: list[bool]
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(f"cv.splits_file={str(path)!r} is not valid JSON: {e}.") from e
        folds = data.get("outer", [data])
        tests = [f["test_groups"] if "test_groups" in f else f["test"] for f in folds]
        by_group = ["test_groups" in f for f in folds]
    else:
        tests = [[line.split()[0] for line in text.splitlines() if line.strip() and not line.startswith("#")]]
        by_group = [False]
    position = {i: k for k, i in enumerate(ids)}
    position.update({Path(i).stem: k for k, i in enumerate(ids) if Path(i).stem not in position})
    g = None if groups is None else np.asarray(groups, dtype=object)
    if g is not None and path.suffix != ".json" and not any(t in position for t in tests[0]):
        by_group = [True]  # a text file of group names
    labels = np.asarray(labels)
    root = cv.seed if cv.seed is not None else seed
    outer = []
    for k, (test_ids, groupwise) in enumerate(zip(tests, by_group, strict=True)):
        if groupwise:
            if g is None:
                raise DataError(
                    f"cv.splits_file={str(path)!r} gives test groups, but the data have no groups; set "
                    "data.group (a table's column) or data.group_pattern."
                )
            test = sorted(np.flatnonzero(np.isin(g, list(test_ids))).tolist())
        else:
            test = sorted({position[t] for t in test_ids if t in position})
        if not test:
            what = "groups" if groupwise else "ids"
            like = sorted(set(g.tolist()))[:3] if groupwise and g is not None else list(ids)[:3]
            raise DataError(
                f"cv.splits_file={str(path)!r}: none of the {len(test_ids)} test {what} of fold {k} is in "
                f"the dataset ({what} look like {like})."
            )
        train = np.setdiff1d(np.arange(len(ids)), test)
        outer.append(
            OuterFold(
                0,
                k,
                train,
                np.asarray(test, dtype=np.int64),
                _inner_folds(train, labels, cv, derive_seed(root, "inner", 0, k), g),
            )
        )
    splits = Splits(outer=outer, ids=list(ids), groups=None if g is None else [str(x) for x in g])
    check_splits(splits)
    return splits


def has_final_stage(cv: CrossValidation) -> bool:
    """Whether the study ends with a final stage (the search and refit once more on all the data): with
    ``cv.final_model`` and more than one outer fold or repeat. With a single outer fold, that fold's refit
    is the final model and nothing is searched twice."""
    return bool(cv.final_model) and (cv.outer_folds > 1 or cv.repeats > 1)


def final_fold(labels: np.ndarray, cv: CrossValidation, *, seed: int, groups: Sequence[str] | None = None) -> OuterFold:
    """The final fold: all the data to train on, with inner folds over it as an outer fold has them
    (group-disjoint with groups), seeded apart from the outer folds'."""
    labels = np.asarray(labels)
    g = None if groups is None else np.asarray(groups, dtype=object)
    everything = np.arange(len(labels))
    root = cv.seed if cv.seed is not None else seed
    inner = _inner_folds(everything, labels, cv, derive_seed(root, "inner", "final"), g)
    fold = OuterFold(0, -1, everything, np.empty(0, dtype=np.int64), inner, final=True)
    if g is not None:
        _check_groups(g, fold, "the final fold")
    return fold
