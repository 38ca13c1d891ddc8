"""The tracking interface: a :class:`Tracker` creates, finds and ends runs; a :class:`Run` takes
parameters, metrics, tags and artifacts. Library code receives these and never calls MLflow itself,
so that training and analysis can run untracked (benchmarks, tests) and the backend can change.
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

__all__ = ["Run", "RunRecord", "Tracker", "end_status", "default_tracking_uri", "existing_store"]


def default_tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, else ``sqlite:///mlflow.db`` in the working directory."""
    return os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///mlflow.db"


def existing_store(uri: str) -> str:
    """``uri``, if it is not an SQLite file that does not exist: a command that only reads runs would
    otherwise create an empty store in the wrong folder and report that nothing is there.

    Raises:
        TrackingError: naming the file it looked for and what to do.
    """
    from reproai.errors import TrackingError

    if not uri.startswith("sqlite:///"):
        return uri
    path = Path(uri[len("sqlite:///") :])
    if str(path) != ":memory:" and not path.exists():
        hint = " (the default)" if uri == "sqlite:///mlflow.db" else ""
        raise TrackingError(
            f"No MLflow tracking store at {uri}{hint}: {path.absolute()} does not exist. Run this in the folder "
            "where `reproai run` ran (it made mlflow.db there), or pass --tracking-uri (or set MLFLOW_TRACKING_URI)."
        )
    return uri


@dataclass(frozen=True)
class LogBatch:
    """What one :meth:`Run.log` call writes: parameters, metrics at ``step``, tags, and tables by artifact file."""

    params: Mapping[str, Any]
    metrics: Mapping[str, float]
    step: int | None
    tags: Mapping[str, Any]
    tables: Mapping[str, pd.DataFrame]


class Run(ABC):
    """A tracked run: parameters, metrics, tags and artifacts. Subclasses implement the storage."""

    id: str

    @abstractmethod
    def log_params(self, params: Mapping[str, Any]) -> None:
        raise NotImplementedError

    @abstractmethod
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None, *, synchronous: bool = True) -> None:
        """Log metrics at ``step``; ``synchronous=False`` returns at once (flushed before the run ends)."""
        raise NotImplementedError

    @abstractmethod
    def set_tags(self, tags: Mapping[str, Any]) -> None:
        raise NotImplementedError

    @abstractmethod
    def log_text(self, text: str, artifact_file: str) -> None:
        raise NotImplementedError

    @abstractmethod
    def log_table(self, table: pd.DataFrame, artifact_file: str) -> None:
        """Log a table as an MLflow table artifact (JSON, ``orient="split"``), replacing any of that name."""
        raise NotImplementedError

    @abstractmethod
    def log_bytes(self, data: bytes, artifact_file: str) -> None:
        """Log a binary artifact (e.g. a PNG figure)."""
        raise NotImplementedError

    def log(
        self,
        *,
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        step: int | None = None,
        tags: Mapping[str, Any] | None = None,
        tables: Mapping[str, pd.DataFrame] | None = None,
    ) -> None:
        """Log parameters, metrics (at ``step``), tags and tables (artifact file -> table) together: one
        request to the store where it allows it."""
        self._log_batch(LogBatch(params or {}, metrics or {}, step, tags or {}, tables or {}))

    def _log_batch(self, batch: LogBatch) -> None:
        """Write what :meth:`log` was given; a store that takes it in one request overrides this."""
        for artifact_file, table in batch.tables.items():
            self.log_table(table, artifact_file)
        if batch.params:
            self.log_params(batch.params)
        if batch.metrics:
            self.log_metrics(batch.metrics, batch.step)
        if batch.tags:
            self.set_tags(batch.tags)

    def flush(self) -> None:  # noqa: B027 (a hook: most runs log synchronously and have nothing to wait for)
        """Wait for pending asynchronous logging (nothing to wait for by default)."""

    def log_dict(self, data: Any, artifact_file: str) -> None:
        self.log_text(json.dumps(data, indent=2, sort_keys=True, default=str), artifact_file)


@dataclass
class RunRecord:
    """A run as found by a search: id, name, status, tags, params and latest metrics."""

    id: str
    name: str
    status: str
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    start_time: int = 0


def end_status(exc: BaseException) -> str:
    """The status of a run that an exception ended: KILLED when it was stopped on purpose (an interrupt,
    a pruned trial), else FAILED."""
    return "KILLED" if isinstance(exc, (KeyboardInterrupt, SystemExit, optuna.TrialPruned)) else "FAILED"


class Tracker(ABC):
    """Creates, finds and ends runs.

    ``start_run`` and ``resume_run`` are context managers that end the run FINISHED, or with the
    status :func:`end_status` gives for the exception that ended it.
    """

    @abstractmethod
    def _create(self, name: str, tags: Mapping[str, Any], parent: Run | None) -> Run:
        raise NotImplementedError

    @abstractmethod
    def _reopen(self, run_id: str) -> Run:
        raise NotImplementedError

    @abstractmethod
    def set_status(self, run_id: str, status: str) -> None:
        """End a run (FINISHED, FAILED, KILLED) or mark it RUNNING again."""
        raise NotImplementedError

    @abstractmethod
    def find_runs(self, tags: Mapping[str, Any], *, status: str | None = None) -> list[RunRecord]:
        """Runs whose tags equal all of ``tags`` (and whose status is ``status``, when given), newest first."""
        raise NotImplementedError

    @abstractmethod
    def get_run(self, run_id: str) -> RunRecord:
        """One run by id."""
        raise NotImplementedError

    @abstractmethod
    def read_text(self, run_id: str, artifact_file: str) -> str:
        """The text of an artifact of a run."""
        raise NotImplementedError

    @abstractmethod
    def log_model(self, run_id: str, local_dir: str, artifact_path: str) -> str:
        """Log a saved MLflow model folder under a run; its ``runs:/`` URI."""

    @abstractmethod
    def register_model(
        self, model_uri: str, name: str, *, alias: str, tags: Mapping[str, Any] | None = None
    ) -> str | None:
        """Register ``model_uri`` as a new version of the registered model ``name``, point ``alias`` at it,
        and tag the version; the ``models:/name@alias`` URI (None where nothing is kept)."""

    def read_table(self, run_id: str, artifact_file: str) -> pd.DataFrame:
        """A table logged with :meth:`Run.log_table`."""
        import io

        return pd.read_json(io.StringIO(self.read_text(run_id, artifact_file)), orient="split")

    @contextmanager
    def _managed(self, run: Run) -> Iterator[Run]:
        try:
            yield run
        except BaseException as e:
            run.flush()
            self.set_status(run.id, end_status(e))
            raise
        run.flush()  # pending asynchronous logging lands before the run is marked finished
        self.set_status(run.id, "FINISHED")

    def start_run(
        self, name: str, *, tags: Mapping[str, Any] | None = None, parent: Run | None = None
    ) -> AbstractContextManager[Run]:
        """Start a run (nested under ``parent``), ended when the ``with`` block ends."""
        return self._managed(self._create(name, dict(tags or {}), parent))

    def open_run(self, name: str, *, tags: Mapping[str, Any] | None = None, parent: Run | None = None) -> Run:
        """Start a run that stays RUNNING until :meth:`set_status` ends it (work shared by workers)."""
        return self._create(name, dict(tags or {}), parent)

    def run(self, run_id: str) -> Run:
        """A handle to log more to an existing run, leaving its status as it is."""
        return self._reopen(run_id)

    def resume_run(self, run_id: str) -> AbstractContextManager[Run]:
        """Mark an existing run RUNNING again and continue logging to it."""
        self.set_status(run_id, "RUNNING")
        return self._managed(self._reopen(run_id))
