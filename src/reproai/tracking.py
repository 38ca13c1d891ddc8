"""Tracking behind a small interface: MLflow for real runs, an in-memory tracker for tests.

Library code receives a :class:`Run` and calls its methods; only this module talks to MLflow, so
that training and analysis can run untracked (benchmarks, tests) and the backend can change.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from reproai.errors import TrackingError

__all__ = ["Run", "Tracker", "MlflowTracker", "MemoryTracker", "NullTracker", "default_tracking_uri",
           "TAG_PREFIX"]

TAG_PREFIX = "reproai."


def default_tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, else ``sqlite:///mlflow.db`` in the working directory."""
    return os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///mlflow.db"


class Run:
    """A tracked run: parameters, metrics, tags and artifacts. Subclasses implement the storage."""

    id: str

    def log_params(self, params: Mapping[str, Any]) -> None:
        raise NotImplementedError

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        raise NotImplementedError

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        raise NotImplementedError

    def log_text(self, text: str, artifact_file: str) -> None:
        raise NotImplementedError

    def log_table(self, table: pd.DataFrame, artifact_file: str) -> None:
        raise NotImplementedError

    def log_dict(self, data: Any, artifact_file: str) -> None:
        self.log_text(json.dumps(data, indent=2, sort_keys=True, default=str), artifact_file)


class Tracker:
    """Creates runs. ``start_run`` is a context manager that ends the run with the right status."""

    def _create(self, name: str, tags: Mapping[str, Any], parent: Run | None) -> Run:
        raise NotImplementedError

    def _end(self, run: Run, status: str) -> None:
        raise NotImplementedError

    @contextmanager
    def start_run(self, name: str, *, tags: Mapping[str, Any] | None = None,
                  parent: Run | None = None) -> Iterator[Run]:
        """Start a run (nested under ``parent``); it ends FINISHED, or FAILED/KILLED on an exception."""
        run = self._create(name, dict(tags or {}), parent)
        try:
            yield run
        except KeyboardInterrupt:
            self._end(run, "KILLED")
            raise
        except BaseException:
            self._end(run, "FAILED")
            raise
        self._end(run, "FINISHED")


# -- MLflow -------------------------------------------------------------------------------------


class MlflowRun(Run):
    def __init__(self, client: Any, run_id: str) -> None:
        self.client, self.id = client, run_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(str(k), str(v)[:6000]) for k, v in params.items()]
        for i in range(0, len(items), 100):  # MLflow accepts at most 100 params per batch
            self.client.log_batch(self.id, params=items[i:i + 100])

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(str(k), float(v), now, step or 0) for k, v in metrics.items()]
        if items:
            self.client.log_batch(self.id, metrics=items)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        if tags:
            self.client.log_batch(self.id, tags=[RunTag(str(k), str(v)) for k, v in tags.items()])

    def log_text(self, text: str, artifact_file: str) -> None:
        self.client.log_text(self.id, text, artifact_file)

    def log_table(self, table: pd.DataFrame, artifact_file: str) -> None:
        self.client.log_table(self.id, data=table, artifact_file=artifact_file)


class MlflowTracker(Tracker):
    """Runs in one MLflow experiment, through an explicit client (no global MLflow state)."""

    def __init__(self, experiment_name: str, tracking_uri: str | None = None) -> None:
        from mlflow import MlflowClient

        self.tracking_uri = tracking_uri or default_tracking_uri()
        self.client = MlflowClient(tracking_uri=self.tracking_uri)
        try:
            experiment = self.client.get_experiment_by_name(experiment_name)
            self.experiment_id = (experiment.experiment_id if experiment is not None
                                  else self.client.create_experiment(experiment_name))
        except Exception as e:
            raise TrackingError(f"Cannot reach the MLflow tracking store at {self.tracking_uri!r}: {e}. Check "
                                "--tracking-uri / MLFLOW_TRACKING_URI, or start the tracking server.") from e

    def _create(self, name: str, tags: Mapping[str, Any], parent: Run | None) -> Run:
        tags = {k: str(v) for k, v in tags.items()}
        if parent is not None:
            tags["mlflow.parentRunId"] = parent.id
        run = self.client.create_run(self.experiment_id, run_name=name, tags=tags)
        return MlflowRun(self.client, run.info.run_id)

    def _end(self, run: Run, status: str) -> None:
        self.client.set_terminated(run.id, status=status)


# -- In memory ----------------------------------------------------------------------------------


class MemoryRun(Run):
    def __init__(self, run_id: str, name: str, tags: dict[str, Any], parent: str | None) -> None:
        self.id, self.name, self.parent = run_id, name, parent
        self.tags = {k: str(v) for k, v in tags.items()}
        self.params: dict[str, str] = {}
        self.metrics: dict[str, list[tuple[int, float]]] = {}
        self.artifacts: dict[str, Any] = {}
        self.status = "RUNNING"

    def log_params(self, params: Mapping[str, Any]) -> None:
        self.params.update({str(k): str(v) for k, v in params.items()})

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        for k, v in metrics.items():
            self.metrics.setdefault(k, []).append((step or 0, float(v)))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self.tags.update({k: str(v) for k, v in tags.items()})

    def log_text(self, text: str, artifact_file: str) -> None:
        self.artifacts[artifact_file] = text

    def log_table(self, table: pd.DataFrame, artifact_file: str) -> None:
        self.artifacts[artifact_file] = table.copy()


class MemoryTracker(Tracker):
    """Keeps runs in memory (``.runs``); for tests and for benchmarks that measure tracking."""

    def __init__(self) -> None:
        self.runs: list[MemoryRun] = []

    def _create(self, name: str, tags: Mapping[str, Any], parent: Run | None) -> Run:
        run = MemoryRun(f"run-{len(self.runs)}", name, dict(tags), parent.id if parent else None)
        self.runs.append(run)
        return run

    def _end(self, run: Run, status: str) -> None:
        run.status = status  # type: ignore[attr-defined]


class NullRun(Run):
    id = "null"

    def log_params(self, params): pass
    def log_metrics(self, metrics, step=None): pass
    def set_tags(self, tags): pass
    def log_text(self, text, artifact_file): pass
    def log_table(self, table, artifact_file): pass


class NullTracker(Tracker):
    """Tracks nothing: for measuring the cost of tracking, and for untracked use."""

    def _create(self, name, tags, parent):
        return NullRun()

    def _end(self, run, status):
        pass
