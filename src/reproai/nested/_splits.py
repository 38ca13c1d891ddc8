"""Nested, stratified, seeded splits; their JSON form; and the leakage check that runs on every split.

Splits are pure functions of (labels, groups, settings, seed) and hold index arrays into the dataset,
never copies of the data. With groups (patients, subjects, lesions, sites), every split, outer and inner,
keeps each group on one side: scikit-learn's ``StratifiedGroupKFold`` for folds, a stratified split of
groups for the single hold-outs; the leakage check asserts it on every split.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, train_test_split

from reproai.config._schema import CrossValidation
from reproai.errors import DataError, ReproaiError
from reproai.training._seeding import derive_seed

__all__ = [
    "InnerFold",
    "OuterFold",
    "Splits",
    "make_splits",
    "splits_from_file",
    "final_fold",
    "has_final_stage",
    "check_splits",
    "LeakageError",
    "split_summary",
    "stratification_problems",
]


class LeakageError(ReproaiError):
    """A split would let test data into training or model selection."""


@dataclass
class InnerFold:
    """Indices (into the whole dataset) to train on and to evaluate on during model selection."""

    train: np.ndarray
    dev: np.ndarray


@dataclass
class OuterFold:
    """A held-out test set, the outer-train set around it, and the inner folds that resample it.

    The *final* fold (``final=True``) trains on all the data and has no test set: the same procedure run
    once more, for the model to deploy.
    """

    repeat: int
    fold: int
    train: np.ndarray
    test: np.ndarray
    inner: list[InnerFold]
    final: bool = False

    @property
    def tag(self) -> int | str:
        """The value of its runs' ``reproai.outer_fold`` tag: its number, or ``"final"``."""
        return "final" if self.final else self.fold

    @property
    def key(self) -> str:
        if self.final:
            return "final"
        return f"{self.fold}" if self.repeat == 0 else f"r{self.repeat}-{self.fold}"


@dataclass
class Splits:
    """All outer folds of all repeats, with the dataset ids (and groups) they index."""

    outer: list[OuterFold]
    ids: list[str]
    groups: list[str] | None = None
    final: OuterFold | None = None  # all the data, with inner folds over it (see OuterFold)

    def to_dict(self) -> dict:
        def ids(ix: np.ndarray) -> list[int]:
            return [int(i) for i in ix]

        return {
            "n": len(self.ids),
            "ids": list(self.ids),
            **({"groups": list(self.groups)} if self.groups is not None else {}),
            **(
                {"final": {"inner": [{"train": ids(i.train), "dev": ids(i.dev)} for i in self.final.inner]}}
                if self.final is not None
                else {}
            ),
            "outer": [
                {
                    "repeat": f.repeat,
                    "fold": f.fold,
                    "train": ids(f.train),
                    "test": ids(f.test),
                    "inner": [{"train": ids(i.train), "dev": ids(i.dev)} for i in f.inner],
                }
                for f in self.outer
            ],
        }

    @classmethod
    def from_dict(cls, d: dict) -> Splits:
        def arr(x: Sequence[int]) -> np.ndarray:
            return np.asarray(x, dtype=np.int64)

        final = None
        if d.get("final") is not None:
            everything = np.arange(len(d["ids"]), dtype=np.int64)
            inner = [InnerFold(arr(i["train"]), arr(i["dev"])) for i in d["final"]["inner"]]
            final = OuterFold(0, -1, everything, np.empty(0, dtype=np.int64), inner, final=True)
        return cls(
            ids=list(d["ids"]),
            groups=list(d["groups"]) if d.get("groups") is not None else None,
            final=final,
            outer=[
                OuterFold(
                    f["repeat"],
                    f["fold"],
                    arr(f["train"]),
                    arr(f["test"]),
                    [InnerFold(arr(i["train"]), arr(i["dev"])) for i in f["inner"]],
                )
                for f in d["outer"]
            ],
        )

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict()))

    @classmethod
    def load(cls, path: str | Path) -> Splits:
        return cls.from_dict(json.loads(Path(path).read_text()))


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


def _parts(fold: OuterFold) -> list[tuple[str, np.ndarray]]:
    parts = [("outer-train", fold.train), ("outer-test", fold.test)]
    for j, inner in enumerate(fold.inner):
        parts += [(f"inner-{j}-train", inner.train), (f"inner-{j}-dev", inner.dev)]
    return parts


def split_summary(splits: Splits, labels: np.ndarray, classes: Sequence[str]) -> list[dict[str, object]]:
    """One row per part of every split (outer-train, outer-test, each inner train and dev): its number of
    images, of groups (with groups) and of images per class."""
    labels = np.asarray(labels)
    g = None if splits.groups is None else np.asarray(splits.groups, dtype=object)
    rows: list[dict[str, object]] = []
    for fold in splits.outer:
        for part, index in _parts(fold):
            counts = np.bincount(labels[index], minlength=len(classes))
            rows.append(
                {
                    "repeat": fold.repeat,
                    "outer_fold": fold.fold,
                    "part": part,
                    "images": len(index),
                    **({"groups": len(set(g[index].tolist()))} if g is not None else {}),
                    **{f"images_{c}": int(n) for c, n in zip(classes, counts, strict=True)},
                }
            )
    return rows


def stratification_problems(
    splits: Splits, labels: np.ndarray, classes: Sequence[str], *, tolerance: float = 0.15
) -> list[str]:
    """Where keeping groups together made stratification poor: a test or dev set without a class, or
    with a class proportion more than ``tolerance`` (absolute) from the data's. Each with the numbers."""
    labels = np.asarray(labels)
    overall = np.bincount(labels, minlength=len(classes)) / len(labels)
    found = []
    for fold in splits.outer:
        for part, index in _parts(fold):
            if not part.endswith(("test", "dev")):
                continue
            share = np.bincount(labels[index], minlength=len(classes)) / max(len(index), 1)
            where = f"outer fold {fold.key}, {part} ({len(index)} images)"
            missing = [c for c, n in zip(classes, share, strict=True) if n == 0]
            if missing:
                found.append(f"{where} has no image of class(es) {missing}")
            elif np.abs(share - overall).max() > tolerance:
                k = int(np.argmax(np.abs(share - overall)))
                found.append(f"{where} has {share[k]:.0%} of class {classes[k]!r} against {overall[k]:.0%} in the data")
    return found
