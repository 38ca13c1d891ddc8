"""Trackers that keep runs in memory (tests, benchmarks) or nowhere (untracked use)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from reproai.errors import TrackingError
from reproai.tracking._base import Run, RunRecord, Tracker

__all__ = ["MemoryRun", "MemoryTracker", "NullRun", "NullTracker"]


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

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None, *, synchronous: bool = True) -> None:
        for k, v in metrics.items():
            self.metrics.setdefault(k, []).append((step or 0, float(v)))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self.tags.update({k: str(v) for k, v in tags.items()})

    def log_text(self, text: str, artifact_file: str) -> None:
        self.artifacts[artifact_file] = text

    def log_table(self, table: pd.DataFrame, artifact_file: str) -> None:
        self.artifacts[artifact_file] = table.copy()

    def log_bytes(self, data: bytes, artifact_file: str) -> None:
        self.artifacts[artifact_file] = data


class MemoryTracker(Tracker):
    """Keeps runs in memory (``.runs``); for tests and for benchmarks that measure tracking."""

    def __init__(self) -> None:
        self.runs: list[MemoryRun] = []
        self.registered: list[dict[str, Any]] = []

    def _create(self, name: str, tags: Mapping[str, Any], parent: Run | None) -> Run:
        run = MemoryRun(f"run-{len(self.runs)}", name, dict(tags), parent.id if parent else None)
        self.runs.append(run)
        return run

    def _by_id(self, run_id: str) -> MemoryRun:
        return next(r for r in self.runs if r.id == run_id)

    def _reopen(self, run_id: str) -> Run:
        return self._by_id(run_id)

    def set_status(self, run_id: str, status: str) -> None:
        self._by_id(run_id).status = status

    def find_runs(self, tags: Mapping[str, Any], *, status: str | None = None) -> list[RunRecord]:
        found = [
            r
            for r in self.runs
            if all(r.tags.get(k) == str(v) for k, v in tags.items()) and (status is None or r.status == status)
        ]
        return [
            RunRecord(
                r.id, r.name, r.status, dict(r.tags), dict(r.params), {k: v[-1][1] for k, v in r.metrics.items()}, i
            )
            for i, r in reversed(list(enumerate(found)))
        ]

    def get_run(self, run_id: str) -> RunRecord:
        r = self._by_id(run_id)
        return RunRecord(
            r.id, r.name, r.status, dict(r.tags), dict(r.params), {k: v[-1][1] for k, v in r.metrics.items()}
        )

    def log_model(self, run_id: str, local_dir: str, artifact_path: str) -> str:
        self._by_id(run_id).artifacts[artifact_path] = local_dir
        return f"runs:/{run_id}/{artifact_path}"

    def register_model(
        self, model_uri: str, name: str, *, alias: str, tags: Mapping[str, Any] | None = None
    ) -> str | None:
        self.registered.append({"uri": model_uri, "name": name, "alias": alias, "tags": dict(tags or {})})
        return f"models:/{name}@{alias}"

    def read_text(self, run_id: str, artifact_file: str) -> str:
        value = self._by_id(run_id).artifacts[artifact_file]
        return value if isinstance(value, str) else value.to_json(orient="split")


class NullRun(Run):
    id = "null"

    def log_params(self, params: Mapping[str, Any]) -> None:
        pass

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None, *, synchronous: bool = True) -> None:
        pass

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        pass

    def log_text(self, text: str, artifact_file: str) -> None:
        pass

    def log_table(self, table: pd.DataFrame, artifact_file: str) -> None:
        pass

    def log_bytes(self, data: bytes, artifact_file: str) -> None:
        pass


class NullTracker(Tracker):
    """Tracks nothing: for measuring the cost of tracking, and for untracked use."""

    def _create(self, name: str, tags: Mapping[str, Any], parent: Run | None) -> Run:
        return NullRun()

    def _reopen(self, run_id: str) -> Run:
        return NullRun()

    def set_status(self, run_id: str, status: str) -> None:
        pass

    def find_runs(self, tags: Mapping[str, Any], *, status: str | None = None) -> list[RunRecord]:
        return []

    def get_run(self, run_id: str) -> RunRecord:
        raise TrackingError(f"No run {run_id!r}: the null tracker keeps nothing.")

    def read_text(self, run_id: str, artifact_file: str) -> str:
        raise TrackingError(f"No artifact {artifact_file!r} of run {run_id!r}: the null tracker keeps nothing.")

    def log_model(self, run_id: str, local_dir: str, artifact_path: str) -> str:
        return f"runs:/{run_id}/{artifact_path}"

    def register_model(
        self, model_uri: str, name: str, *, alias: str, tags: Mapping[str, Any] | None = None
    ) -> str | None:
        return None
