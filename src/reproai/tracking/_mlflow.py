"""Tracking in MLflow, through an explicit client (no global MLflow state)."""

from __future__ import annotations

import contextlib
import json
import os
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pandas as pd

from reproai.errors import DiskFullError, TrackingError, is_disk_full
from reproai.runtime._retry import PatientClient, is_unreachable
from reproai.tracking._base import LogBatch, Run, RunRecord, Tracker, default_tracking_uri, existing_store
from reproai.tracking._tags import PREFIX

__all__ = ["MlflowRun", "MlflowTracker"]


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

    def _log_batch(self, batch: LogBatch) -> None:
        from mlflow.entities import Param, RunTag

        rest = [Param(str(k), str(v)[:6000]) for k, v in batch.params.items()]
        metric_items = _metrics(batch.metrics, batch.step)
        tag_items = [RunTag(str(k), str(v)) for k, v in batch.tags.items()]
        if batch.tables:
            tag_items.append(RunTag(_LOGGED_ARTIFACTS, self._write_tables(batch.tables)))
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
        # outages are waited out by reproai.runtime._retry, which says so.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
        self.tracking_uri = tracking_uri or default_tracking_uri()
        if not create:
            existing_store(self.tracking_uri)
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
            # Found at start, so from now on a server that goes away is waited for (reproai.runtime._retry).
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
            # MLflow 3's UI opens an experiment by its kind; without one it shows the GenAI overview (traces),
            # not the runs.
            return self.client.create_experiment(name, tags={"mlflow.experimentKind": "custom_model_development"})
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

        uri = existing_store(tracking_uri or default_tracking_uri())
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

    def log_model(self, run_id: str, local_dir: str, artifact_path: str) -> str:
        self.client.log_artifacts(run_id, local_dir, artifact_path)
        return f"runs:/{run_id}/{artifact_path}"

    def register_model(
        self, model_uri: str, name: str, *, alias: str, tags: Mapping[str, Any] | None = None
    ) -> str | None:
        """A version of ``name`` (the registered model is created on first use), with ``alias`` on it:
        MLflow's aliases, not its deprecated stages. Moving the alias off another version warns."""
        try:
            self.client.get_registered_model(name)
        except Exception:  # not there yet (or created by another worker a moment ago: tolerated below)
            with contextlib.suppress(Exception):
                self.client.create_registered_model(name, tags={f"{PREFIX}experiment": self.experiment_name})
        run_id = model_uri.split("/")[1] if model_uri.startswith("runs:/") else None
        version = self.client.create_model_version(
            name, source=model_uri, run_id=run_id, tags={str(k): str(v) for k, v in (tags or {}).items()}
        )
        previous = None
        with contextlib.suppress(Exception):  # no version has the alias yet
            previous = self.client.get_model_version_by_alias(name, alias)
        self.client.set_registered_model_alias(name, alias, version.version)
        if previous is not None and previous.version != version.version:
            warnings.warn(
                f"models:/{name}@{alias} moved from version {previous.version} (run {previous.run_id}) to version "
                f"{version.version}; the previous one stays in the registry as models:/{name}/{previous.version}.",
                stacklevel=2,
            )
        return f"models:/{name}@{alias}"
