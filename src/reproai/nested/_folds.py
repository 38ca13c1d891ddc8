"""The nested splits as data: inner folds inside outer folds, and all of them with the dataset ids (and
groups) they index, with their JSON form.

Splits hold index arrays into the dataset, never copies of the data. They live apart from the code that makes
them (``_splits``) and the code that checks them (``_leakage``) because both need them and the makers call the
check: with the types in either module, the two would import each other (a cycle, even under TYPE_CHECKING).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["InnerFold", "OuterFold", "Splits"]


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
