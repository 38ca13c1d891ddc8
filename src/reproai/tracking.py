"""Tracking behind a small interface: MLflow for real runs, an in-memory tracker for tests.

Library code receives a :class:`Run` and calls its methods; only this module talks to MLflow, so
that training and analysis can run untracked (benchmarks, tests) and the backend can change.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import optuna
import pandas as pd

from reproai.errors import DiskFullError, TrackingError, is_disk_full
from reproai.retry import PatientClient, is_unreachable

__all__ = [
    "Run",
    "RunRecord",
    "Tracker",
    "MlflowTracker",
    "MemoryTracker",
    "NullTracker",
    "default_tracking_uri",
    "TAG_PREFIX",
]

TAG_PREFIX = "reproai."


def default_tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, else ``sqlite:///mlflow.db`` in the working directory."""
    return os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///mlflow.db"


class Run:
    """A tracked run: parameters, metrics, tags and artifacts. Subclasses implement the storage."""

    id: str

    def log_params(self, params: Mapping[str, Any]) -> None:
        raise NotImplementedError

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None, *, synchronous: bool = True) -> None:
        """Log metrics at ``step``; ``synchronous=False`` returns at once (flushed before the run ends)."""
        raise NotImplementedError

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        raise NotImplementedError

    def log_text(self, text: str, artifact_file: str) -> None:
        raise NotImplementedError

    def log_table(self, table: pd.DataFrame, artifact_file: str) -> None:
        """Log a table as an MLflow table artifact (JSON, ``orient="split"``), replacing any of that name."""
        raise NotImplementedError

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
        for artifact_file, table in (tables or {}).items():
            self.log_table(table, artifact_file)
        if params:
            self.log_params(params)
        if metrics:
            self.log_metrics(metrics, step)
        if tags:
            self.set_tags(tags)

    def flush(self) -> None:
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


class Tracker:
    """Creates, finds and ends runs.

    ``start_run`` and ``resume_run`` are context managers that end the run FINISHED, or with the
    status :func:`end_status` gives for the exception that ended it.
    """

    def _create(self, name: str, tags: Mapping[str, Any], parent: Run | None) -> Run:
        raise NotImplementedError

    def _reopen(self, run_id: str) -> Run:
        raise NotImplementedError

    def set_status(self, run_id: str, status: str) -> None:
        """End a run (FINISHED, FAILED, KILLED) or mark it RUNNING again."""
        raise NotImplementedError

    def find_runs(self, tags: Mapping[str, Any], *, status: str | None = None) -> list[RunRecord]:
        """Runs whose tags equal all of ``tags`` (and whose status is ``status``, when given), newest first."""
        raise NotImplementedError

    def get_run(self, run_id: str) -> RunRecord:
        """One run by id."""
        raise NotImplementedError

    def read_text(self, run_id: str, artifact_file: str) -> str:
        """The text of an artifact of a run."""
        raise NotImplementedError

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


# -- MLflow -------------------------------------------------------------------------------------


# MLflow's list of a run's table artifacts, which its UI and ``mlflow.load_table`` read.
_LOGGED_ARTIFACTS = "mlflow.loggedArtifacts"


class MlflowRun(Run):
    def __init__(self, client: Any, run_id: str, *, new: bool = False) -> None:
        self.client, self.id = client, run_id
        self.pending: list[Any] = []
        # The run's logged tables (the value of its loggedArtifacts tag): known to be none for a run
        # this handle created, read from the store on the first table otherwise.
        self.tables: list[dict[str, str]] | None = [] if new else None

    def log_params(self, params: Mapping[str, Any]) -> None:
        self.log(params=params)

    def log(
        self,
        *,
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        step: int | None = None,
        tags: Mapping[str, Any] | None = None,
        tables: Mapping[str, pd.DataFrame] | None = None,
    ) -> None:
        from mlflow.entities import Param, RunTag

        rest = [Param(str(k), str(v)[:6000]) for k, v in (params or {}).items()]
        metric_items = _metrics(metrics or {}, step)
        tag_items = [RunTag(str(k), str(v)) for k, v in (tags or {}).items()]
        if tables:
            tag_items.append(RunTag(_LOGGED_ARTIFACTS, self._write_tables(tables)))
        while True:  # MLflow takes at most 100 params a request: the metrics and tags go with the first
            chunk, rest = rest[:100], rest[100:]
            if chunk or metric_items or tag_items:
                self.client.log_batch(self.id, metrics=metric_items, params=chunk, tags=tag_items)
            metric_items, tag_items = [], []
            if not rest:
                return

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None, *, synchronous: bool = True) -> None:
        items = _metrics(metrics, step)
        if not items:
            return
        if synchronous:
            self.client.log_batch(self.id, metrics=items)
        else:
            self.pending.append((items, self.client.log_batch(self.id, metrics=items, synchronous=False)))

    def flush(self) -> None:
        """Wait for the asynchronous logging of this run; what a lost connection dropped is logged again."""
        while self.pending:
            items, operation = self.pending.pop(0)
            try:
                operation.wait()
            except Exception as e:
                if not is_unreachable(e):
                    raise
                self.client.log_batch(self.id, metrics=items)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self.log(tags=tags)

    @contextmanager
    def _writing(self, artifact_file: str) -> Iterator[None]:
        """Turn a full disk into a clear error that names the artifact and where it was going."""
        try:
            yield
        except Exception as e:
            if not is_disk_full(e):
                raise
            try:
                where = self.client.get_run(self.id).info.artifact_uri
            except Exception:  # pragma: no cover - the store itself may be on the full disk
                where = "the run's artifact location"
            raise DiskFullError(
                f"Cannot write artifact {artifact_file!r} of run {self.id} to {where}: {e}. Free "
                "disk space there and run the same command again: finished trials are kept and "
                "the study resumes."
            ) from e

    def log_text(self, text: str, artifact_file: str) -> None:
        with self._writing(artifact_file):
            self.client.log_text(self.id, text, artifact_file)

    def log_table(self, table: pd.DataFrame, artifact_file: str) -> None:
        self.log(tables={artifact_file: table})

    def _write_tables(self, tables: Mapping[str, pd.DataFrame]) -> str:
        """Write tables as MLflow's ``log_table`` does, and return the run's new loggedArtifacts tag.

        ``MlflowClient.log_table`` lists the run's artifacts, reads the run and sets the tag: three
        requests a table on top of the upload, which the caller's one ``log_batch`` replaces here.
        """
        if self.tables is None:
            self.tables = json.loads(self.client.get_run(self.id).data.tags.get(_LOGGED_ARTIFACTS, "[]"))
        for artifact_file, table in tables.items():
            if not artifact_file.endswith(".json"):
                raise ValueError(f"A table artifact must be a .json file, not {artifact_file!r}.")
            self.log_text(table.to_json(orient="split", index=False, date_format="iso"), artifact_file)
            if {"path": artifact_file, "type": "table"} not in self.tables:
                self.tables.append({"path": artifact_file, "type": "table"})
        return json.dumps(self.tables)

    def log_bytes(self, data: bytes, artifact_file: str) -> None:
        import tempfile
        from pathlib import Path

        with self._writing(artifact_file), tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / Path(artifact_file).name
            path.write_bytes(data)
            self.client.log_artifact(self.id, str(path), str(Path(artifact_file).parent) or None)


def _metrics(metrics: Mapping[str, float], step: int | None) -> list[Any]:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    return [Metric(str(k), float(v), now, step or 0) for k, v in metrics.items()]


def _to_record(r: Any) -> RunRecord:
    return RunRecord(
        r.info.run_id,
        r.info.run_name,
        r.info.status,
        dict(r.data.tags),
        dict(r.data.params),
        dict(r.data.metrics),
        r.info.start_time or 0,
    )


class MlflowTracker(Tracker):
    """Runs in one MLflow experiment, through an explicit client (no global MLflow state)."""

    def __init__(self, experiment_name: str, tracking_uri: str | None = None, *, create: bool = True) -> None:
        from mlflow import MlflowClient

        # Artifacts are small and many; MLflow's per-download progress bar would drown ours.
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        # Against a server MLflow prints two links (after one more request) each time a run ends.
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        # MLflow's own retries of a request (7, silent, up to minutes) are cut to a few seconds: longer
        # outages are waited out by reproai.retry, which says so.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
        self.tracking_uri = tracking_uri or default_tracking_uri()
        self.client: MlflowClient | PatientClient = MlflowClient(tracking_uri=self.tracking_uri)
        experiment_id: str | None
        try:
            experiment = self.client.get_experiment_by_name(experiment_name)
            if experiment is None and create:
                experiment_id = self._create_experiment(experiment_name)
            else:
                experiment_id = None if experiment is None else experiment.experiment_id
        except Exception as e:
            raise TrackingError(
                f"Cannot reach the MLflow tracking store at {self.tracking_uri!r}: {e}. Check "
                "--tracking-uri / MLFLOW_TRACKING_URI, or start the tracking server."
            ) from e
        if self.tracking_uri.startswith(("http://", "https://")):
            # Found at start, so from now on a server that goes away is waited for (reproai.retry).
            self.client = PatientClient(self.client, self.tracking_uri)
        if experiment_id is None:
            names = [e.name for e in self.client.search_experiments()]
            raise TrackingError(
                f"No MLflow experiment named {experiment_name!r} at {self.tracking_uri!r}; it has "
                f"{names}. Check the name, or --tracking-uri / MLFLOW_TRACKING_URI."
            )
        self.experiment_id: str = experiment_id
        self.experiment_name = experiment_name

    def _create_experiment(self, name: str) -> str:
        try:
            return self.client.create_experiment(name)
        except Exception:
            # Another worker created it at the same moment: use theirs.
            experiment = self.client.get_experiment_by_name(name)
            if experiment is None:
                raise
            return experiment.experiment_id

    @classmethod
    def for_run(cls, run_id: str, tracking_uri: str | None = None) -> tuple[MlflowTracker, RunRecord]:
        """The tracker of the experiment that holds run ``run_id``, and that run."""
        from mlflow import MlflowClient

        uri = tracking_uri or default_tracking_uri()
        try:
            run = MlflowClient(tracking_uri=uri).get_run(run_id)
            name = MlflowClient(tracking_uri=uri).get_experiment(run.info.experiment_id).name
        except Exception as e:
            raise TrackingError(
                f"No run {run_id!r} at {uri!r}: {e}. Check the run id, or --tracking-uri / MLFLOW_TRACKING_URI."
            ) from e
        return cls(name, uri, create=False), _to_record(run)

    def _create(self, name: str, tags: Mapping[str, Any], parent: Run | None) -> Run:
        tags = {k: str(v) for k, v in tags.items()}
        if parent is not None:
            tags["mlflow.parentRunId"] = parent.id
        run = self.client.create_run(self.experiment_id, run_name=name, tags=tags)
        return MlflowRun(self.client, run.info.run_id, new=True)

    def _reopen(self, run_id: str) -> Run:
        return MlflowRun(self.client, run_id)

    def set_status(self, run_id: str, status: str) -> None:
        if status == "RUNNING":
            self.client.update_run(run_id, status="RUNNING")
        else:
            self.client.set_terminated(run_id, status=status)

    def find_runs(self, tags: Mapping[str, Any], *, status: str | None = None) -> list[RunRecord]:
        clauses = [f"tags.`{k}` = '{v}'" for k, v in tags.items()]
        if status is not None:
            clauses.append(f"attributes.status = '{status}'")
        records, token = [], None
        while True:
            page = self.client.search_runs(
                [self.experiment_id],
                " and ".join(clauses),
                max_results=1000,
                order_by=["attributes.start_time DESC"],
                page_token=token,
            )
            records += [_to_record(r) for r in page]
            token = page.token
            if not token:
                return records

    def get_run(self, run_id: str) -> RunRecord:
        """One run by id; a clear error when the store has no such run."""
        try:
            return _to_record(self.client.get_run(run_id))
        except Exception as e:
            raise TrackingError(f"No run {run_id!r} at {self.tracking_uri!r}: {e}") from e

    def read_text(self, run_id: str, artifact_file: str) -> str:
        import tempfile
        from pathlib import Path

        with tempfile.TemporaryDirectory() as tmp:
            return Path(self.client.download_artifacts(run_id, artifact_file, tmp)).read_text()


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
