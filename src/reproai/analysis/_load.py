"""Read a tracked study back: its runs (found by tags, in one search) and its logged tables."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from reproai.errors import ReproaiError, TrackingError
from reproai.tracking import RunRecord, Tracker, find_study
from reproai.tracking._tags import Level, Tag

__all__ = ["StudyData", "load_study"]


@dataclass
class StudyData:
    """A finished study as tracked: the study run, all runs under it, and its logged tables."""

    tracker: Tracker
    study: RunRecord
    runs: list[RunRecord]
    predictions: pd.DataFrame = field(repr=False)
    classes: list[str]
    splits: dict[str, Any] = field(repr=False)
    config_name: str = "config.py"
    config_text: str = field(default="", repr=False)
    resolved: dict[str, Any] = field(default_factory=dict, repr=False)
    environment: dict[str, Any] = field(default_factory=dict, repr=False)
    # Per part of every split: images, groups and images per class (splits/summary.json).
    split_table: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    # The runs of the final model's stage (its search, refit and phases), apart from the outer folds'.
    final_runs: list[RunRecord] = field(default_factory=list, repr=False)

    @property
    def name(self) -> str:
        return self.study.name

    @property
    def metric(self) -> str:
        return self.study.tags.get(Tag.METRIC, "roc_auc")

    def level(self, level: str) -> list[RunRecord]:
        """The study's runs of one level (``outer_fold``, ``trial``, ``fit``, ``phase``)."""
        return [r for r in self.runs if r.tags.get(Tag.LEVEL) == level]

    @property
    def outer_folds(self) -> list[tuple[int, int]]:
        """``(repeat, fold)`` of every outer fold, in order."""
        return sorted(
            {(int(r), int(f)) for r, f in zip(self.predictions["repeat"], self.predictions["outer_fold"], strict=True)}
        )

    @property
    def test_train_ratio(self) -> float:
        """Mean over outer folds of n_test / n_train (for the Nadeau-Bengio correction)."""
        outer = self.splits.get("outer", [])
        return float(np.mean([len(f["test"]) / len(f["train"]) for f in outer])) if outer else 0.0

    @property
    def final_model(self) -> str | None:
        """The URI of the study's final model (``models:/<name>@final``), if it has one."""
        return self.study.tags.get(Tag.FINAL_MODEL)

    def final_params(self) -> dict[str, Any] | None:
        """The hyperparameters the final model's search chose (``{}`` without a search), or None."""
        for r in self.final_runs:
            if r.tags.get(Tag.LEVEL) == Level.FINAL and r.tags.get(Tag.STATE) == "complete":
                return dict(json.loads(r.tags.get(Tag.BEST_PARAMS, "{}")))
        return None

    def best_params(self) -> pd.DataFrame:
        """The chosen hyperparameters per outer fold (one row each), from the outer-fold runs."""
        rows = []
        for r in self.level("outer_fold"):
            params = json.loads(r.tags.get(Tag.BEST_PARAMS, "{}"))
            rows.append({"repeat": int(r.tags[Tag.REPEAT]), "outer_fold": int(r.tags[Tag.OUTER_FOLD]), **params})
        return (
            pd.DataFrame(rows).sort_values(["repeat", "outer_fold"]).reset_index(drop=True) if rows else pd.DataFrame()
        )


def _read_json(tracker: Tracker, run_id: str, path: str, default: Any) -> Any:
    try:
        return json.loads(tracker.read_text(run_id, path))
    except Exception:  # an older or partial study: the report says what is missing
        return default


def _read_table(tracker: Tracker, run_id: str, path: str) -> pd.DataFrame:
    try:
        return tracker.read_table(run_id, path)
    except Exception:  # an older study: the report falls back to what it can compute
        return pd.DataFrame()


def load_study(reference: str, tracking_uri: str | None = None) -> StudyData:
    """Find a finished study and read it back: one run search plus a few artifact downloads, however
    many runs the study has."""
    tracker, study = find_study(reference, tracking_uri)
    if study.tags.get(Tag.STATE) != "complete":
        raise ReproaiError(
            f"Study run {study.id} has not finished (no headline yet); run the same `reproai run` "
            "command again to resume it."
        )
    runs = tracker.find_runs({Tag.STUDY_ID: study.id})
    try:
        predictions = tracker.read_table(study.id, "predictions/out_of_fold.json")
    except Exception as e:
        raise TrackingError(f"Cannot read predictions/out_of_fold.json of study run {study.id}: {e}") from e
    classes = json.loads(study.tags.get(Tag.CLASSES, "[]"))
    if not classes:
        raise ReproaiError(
            f"Study run {study.id} has no {Tag.CLASSES} tag; it was not made by this version of reproai."
        )
    config_name = study.tags.get(Tag.CONFIG_FILE, "config.py")
    config_text = ""
    with contextlib.suppress(Exception):
        config_text = tracker.read_text(study.id, f"config/{config_name}")
    return StudyData(
        tracker=tracker,
        study=study,
        runs=[r for r in runs if r.id != study.id and r.tags.get(Tag.OUTER_FOLD) != "final"],
        final_runs=[r for r in runs if r.tags.get(Tag.OUTER_FOLD) == "final"],
        predictions=predictions,
        classes=classes,
        splits=_read_json(tracker, study.id, "splits.json", {}),
        config_name=config_name,
        config_text=config_text,
        resolved=_read_json(tracker, study.id, "config/resolved.json", {}),
        environment=_read_json(tracker, study.id, "environment.json", {}),
        split_table=_read_table(tracker, study.id, "splits/summary.json"),
    )
