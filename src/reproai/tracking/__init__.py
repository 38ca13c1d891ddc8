"""Tracking behind a small interface: MLflow for real runs, in memory for tests, or nothing.

Only :mod:`reproai.tracking.mlflow_tracker` talks to MLflow.
"""

from reproai.tracking.base import Run, RunRecord, Tracker, default_tracking_uri, end_status, existing_store
from reproai.tracking.memory import MemoryRun, MemoryTracker, NullRun, NullTracker
from reproai.tracking.mlflow_tracker import MlflowRun, MlflowTracker

__all__ = [
    "Run",
    "RunRecord",
    "Tracker",
    "MlflowRun",
    "MlflowTracker",
    "MemoryRun",
    "MemoryTracker",
    "NullRun",
    "NullTracker",
    "default_tracking_uri",
    "end_status",
    "existing_store",
]
