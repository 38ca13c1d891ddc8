"""The plan of one fit of a study: which fold and subsets, which parameters, seed, epochs and threshold.

One dataclass is built by the study for every fit (an inner fit of a trial, an outer fold's refit, a fit of
a config without search space), written with the fit as ``fit.json``, and read back by ``reproai rerun``,
which runs exactly the plan the study ran.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from reproai.config._schema import Experiment
from reproai.config._tree import resolve
from reproai.errors import ReproaiError
from reproai.nested._folds import OuterFold, Splits
from reproai.tracking._tags import Tag
from reproai.training import FitOptions, Subsets
from reproai.training._seeding import derive_seed

__all__ = ["FitPlan", "FitKind", "fit_seed"]

FitKind = Literal["inner", "refit", "single"]


def fit_seed(root: int, kind: str, repeat: int, fold: int, inner: int | None = None) -> int:
    """The seed of one fit. Every trial uses the same seed on the same inner fold, so that trials
    differ only by their parameters (common random numbers make the comparison fairer)."""
    return derive_seed(root, kind, repeat, fold, *(() if inner is None else (inner,)))


@dataclass(frozen=True)
class FitPlan:
    """One fit of a study.

    ``kind``: ``"inner"`` (a trial's fit on inner fold ``inner_fold``: inner-train, scored on inner-dev),
    ``"refit"`` (the outer fold's refit on all of outer-train with the best trial's ``params``, each
    phase ``epochs[i]`` epochs and the dev-fitted ``threshold``, tested once) or ``"single"`` (a config
    without search space: a fit on inner fold 0, tested once). ``final``: the fold is the final model's.
    """

    kind: FitKind
    repeat: int
    fold: int
    seed: int
    final: bool = False
    inner_fold: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    epochs: list[int] | None = None
    threshold: float | None = None

    @classmethod
    def inner(cls, experiment: Experiment, fold: OuterFold, j: int, params: dict[str, Any]) -> FitPlan:
        """A trial's fit on inner fold ``j`` of ``fold``."""
        seed = fit_seed(experiment.seed, "inner", fold.repeat, fold.fold, j)
        return cls("inner", fold.repeat, fold.fold, seed, fold.final, j, dict(params))

    @classmethod
    def refit(
        cls,
        experiment: Experiment,
        fold: OuterFold,
        params: dict[str, Any],
        epochs: list[int],
        threshold: float | None,
    ) -> FitPlan:
        """The refit of ``fold`` with the best trial's parameters, epochs and threshold."""
        seed = fit_seed(experiment.seed, "refit", fold.repeat, fold.fold)
        return cls("refit", fold.repeat, fold.fold, seed, fold.final, None, dict(params), list(epochs), threshold)

    @classmethod
    def single(cls, experiment: Experiment, fold: OuterFold) -> FitPlan:
        """The one fit of ``fold`` for a config without search space."""
        return cls(
            "single", fold.repeat, fold.fold, fit_seed(experiment.seed, "fit", fold.repeat, fold.fold), fold.final, 0
        )

    @property
    def run_name(self) -> str:
        return {"inner": f"inner-{self.inner_fold}", "refit": "refit", "single": "fit"}[self.kind]

    @property
    def tags(self) -> dict[str, Any]:
        """The tags that mark the fit's run (beside the fold's)."""
        return {Tag.REFIT: "true"} if self.kind == "refit" else {Tag.INNER_FOLD: self.inner_fold}

    def outer_fold(self, splits: Splits) -> OuterFold:
        """The outer fold (or the final fold) this fit belongs to. Raises :class:`ReproaiError` when
        ``splits`` have no such fold."""
        if self.final:
            if splits.final is None:
                raise ReproaiError(f"A {self.kind} fit of the final model, but the splits have no final fold.")
            return splits.final
        for fold in splits.outer:
            if (fold.repeat, fold.fold) == (self.repeat, self.fold):
                return fold
        raise ReproaiError(f"The splits have no outer fold {self.fold} of repeat {self.repeat}.")

    def subsets(self, splits: Splits) -> Subsets:
        """The fit's train, dev and test indices in ``splits``: a refit trains on outer-train; the others on
        an inner fold's train and dev sets. Refits and single fits predict the outer test set (the final
        fold has none)."""
        fold = self.outer_fold(splits)
        test = fold.test if len(fold.test) and self.kind != "inner" else None
        if self.kind == "refit":
            return Subsets(train=fold.train, test=test)
        inner = fold.inner[self.inner_fold or 0]
        return Subsets(train=inner.train, dev=inner.dev, test=test)

    def options(self, metric: str) -> FitOptions:
        return FitOptions(metric=metric, seed=self.seed, epochs=self.epochs, threshold=self.threshold)

    def config(self, experiment: Experiment) -> Experiment:
        """The experiment with this fit's parameters (its search spaces resolved)."""
        return resolve(experiment, self.params) if self.params else experiment

    def to_dict(self) -> dict[str, Any]:
        """The plan as ``fit.json`` holds it (the fit's results are added beside it)."""
        out: dict[str, Any] = {"kind": self.kind, "repeat": self.repeat, "fold": self.fold, "final": self.final}
        if self.inner_fold is not None:
            out["inner_fold"] = self.inner_fold
        out["params"] = self.params
        out["seed"] = self.seed
        if self.kind == "refit":
            out["epochs"] = self.epochs
            out["threshold"] = self.threshold
        return out

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> FitPlan:
        """The plan of a logged ``fit.json`` (also those logged before plans existed: their keys are the same).
        Only a refit's threshold is part of its plan; other fits fit theirs on dev data."""
        kind = record["kind"]
        return cls(
            kind=kind,
            repeat=int(record["repeat"]),
            fold=int(record["fold"]),
            seed=int(record["seed"]),
            final=bool(record.get("final", False)),
            inner_fold=record.get("inner_fold", 0 if kind != "refit" else None),
            params=dict(record.get("params") or {}),
            epochs=list(record["epochs"]) if kind == "refit" else None,
            threshold=record.get("threshold") if kind == "refit" else None,
        )
