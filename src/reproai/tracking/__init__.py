"""Tracking behind a small interface: MLflow for real runs, in memory for tests, or nothing.

Only :mod:`reproai.tracking._mlflow` talks to MLflow; the tag keys and run levels are here too.
"""

from reproai.tracking._base import Run, RunRecord, Tracker, default_tracking_uri, end_status, existing_store
from reproai.tracking._memory import MemoryRun, MemoryTracker, NullRun, NullTracker
from reproai.tracking._mlflow import MlflowRun, MlflowTracker
from reproai.tracking._studies import find_study
from reproai.tracking._tags import PREFIX, Level, Tag

__all__ = [
    "PREFIX",
    "Level",
    "MemoryRun",
    "MemoryTracker",
    "MlflowRun",
    "MlflowTracker",
    "NullRun",
    "NullTracker",
    "Run",
    "RunRecord",
    "Tag",
    "Tracker",
    "default_tracking_uri",
    "end_status",
    "existing_store",
    "find_study",
]
