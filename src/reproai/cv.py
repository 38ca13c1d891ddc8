"""Nested, stratified, seeded splits; their JSON form; and the leakage check that runs on every split.

Splits are pure functions of (labels, settings, seed) and hold index arrays into the dataset, never
copies of the data.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedKFold, train_test_split

from reproai.config.schema import CrossValidation
from reproai.errors import DataError, ReproaiError
from reproai.seeding import derive_seed

__all__ = ["InnerFold", "OuterFold", "Splits", "make_splits", "splits_from_file", "check_splits", "LeakageError"]


class LeakageError(ReproaiError):
    """A split would let test data into training or model selection."""


@dataclass
class InnerFold:
    """Indices (into the whole dataset) to train on and to evaluate on during model selection."""

    train: np.ndarray
    dev: np.ndarray


@dataclass
class OuterFold:
    """A held-out test set, the outer-train set around it, and the inner folds that resample it."""

    repeat: int
    fold: int
    train: np.ndarray
    test: np.ndarray
    inner: list[InnerFold]

    @property
    def key(self) -> str:
        return f"{self.fold}" if self.repeat == 0 else f"r{self.repeat}-{self.fold}"


@dataclass
class Splits:
    """All outer folds of all repeats, with the dataset ids they index."""

    outer: list[OuterFold]
    ids: list[str]

    def to_dict(self) -> dict:
        def ids(ix: np.ndarray) -> list[int]:
            return [int(i) for i in ix]

        return {
            "n": len(self.ids),
            "ids": list(self.ids),
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

        return cls(
            ids=list(d["ids"]),
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


def _holdout(index: np.ndarray, labels: np.ndarray, size: float, seed: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        a, b = train_test_split(index, test_size=size, random_state=seed, stratify=labels[index])
    except ValueError as e:
        raise DataError(
            f"Cannot hold out a stratified {what} set of {size:.0%} from {len(index)} examples: {e}. "
            "Use more data, or fewer/larger folds."
        ) from e
    return np.sort(a), np.sort(b)


def _kfold(index: np.ndarray, labels: np.ndarray, k: int, seed: int, what: str) -> list[tuple[np.ndarray, np.ndarray]]:
    counts = np.bincount(labels[index])
    smallest = counts[counts > 0].min()
    if smallest < k:
        raise DataError(
            f"Cannot make {k} stratified {what} folds: the smallest class has only {smallest} "
            f"example(s) among these {len(index)}. Use at most {smallest} folds, or more data."
        )
    skf = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    return [(index[a], index[b]) for a, b in skf.split(index, labels[index])]


def make_splits(labels: np.ndarray, cv: CrossValidation, *, seed: int, ids: Sequence[str] | None = None) -> Splits:
    """Stratified outer folds (or one holdout test set), each with stratified inner folds."""
    labels = np.asarray(labels)
    index = np.arange(len(labels))
    root = cv.seed if cv.seed is not None else seed
    outer: list[OuterFold] = []
    for r in range(cv.repeats):
        s = derive_seed(root, "outer", r)
        if cv.outer_folds == 1:
            pairs = [_holdout(index, labels, cv.test_size, s, "test")]
        else:
            pairs = _kfold(index, labels, cv.outer_folds, s, "outer")
        for k, (train, test) in enumerate(pairs):
            inner = _inner_folds(np.sort(train), labels, cv, derive_seed(root, "inner", r, k))
            outer.append(OuterFold(r, k, np.sort(train), np.sort(test), inner))
    splits = Splits(outer=outer, ids=list(ids) if ids is not None else [str(i) for i in index])
    check_splits(splits)
    return splits


def _inner_folds(train: np.ndarray, labels: np.ndarray, cv: CrossValidation, seed: int) -> list[InnerFold]:
    if cv.inner_folds == 1:
        return [InnerFold(*_holdout(train, labels, cv.dev_size, seed, "dev"))]
    return [InnerFold(np.sort(a), np.sort(b)) for a, b in _kfold(train, labels, cv.inner_folds, seed, "inner")]


def splits_from_file(
    path: str | Path, labels: np.ndarray, cv: CrossValidation, *, seed: int, ids: Sequence[str]
) -> Splits:
    """Outer folds whose test sets a file gives (see ``CrossValidation.splits_file``); inner folds computed."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"cv.splits_file={str(path)!r} does not exist.")
    text = path.read_text()
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(f"cv.splits_file={str(path)!r} is not valid JSON: {e}.") from e
        tests = [f["test"] for f in data["outer"]] if "outer" in data else [data["test"]]
    else:
        tests = [[line.split()[0] for line in text.splitlines() if line.strip() and not line.startswith("#")]]
    position = {i: k for k, i in enumerate(ids)}
    position.update({Path(i).stem: k for k, i in enumerate(ids) if Path(i).stem not in position})
    labels = np.asarray(labels)
    root = cv.seed if cv.seed is not None else seed
    outer = []
    for k, test_ids in enumerate(tests):
        test = sorted({position[t] for t in test_ids if t in position})
        if not test:
            raise DataError(
                f"cv.splits_file={str(path)!r}: none of the {len(test_ids)} test ids of fold {k} is in "
                f"the dataset (ids look like {list(ids)[:3]})."
            )
        train = np.setdiff1d(np.arange(len(ids)), test)
        outer.append(
            OuterFold(
                0,
                k,
                train,
                np.asarray(test, dtype=np.int64),
                _inner_folds(train, labels, cv, derive_seed(root, "inner", 0, k)),
            )
        )
    splits = Splits(outer=outer, ids=list(ids))
    check_splits(splits)
    return splits


def check_splits(splits: Splits) -> None:
    """Raise :class:`LeakageError` unless no test index reaches training or selection.

    Checked: each outer fold's test set is disjoint from its outer-train set and from every inner
    train and dev set; inner sets lie inside outer-train and do not overlap; and within each repeat
    the test sets of several outer folds partition the data. This check cannot be switched off.
    """
    n = len(splits.ids)
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
