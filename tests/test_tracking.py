"""The tracking interface against a real MLflow store, and in memory."""

import json

import pandas as pd
import pytest

from reproai.tracking import MemoryTracker, MlflowTracker


class CountingClient:
    """Passes every call to the real client, counting the requests that write to a run."""

    def __init__(self, client):
        self.client, self.batches = client, 0

    def log_batch(self, *args, **kwargs):
        self.batches += 1
        return self.client.log_batch(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.client, name)


@pytest.fixture
def mlflow_run(tmp_path):
    tracker = MlflowTracker("tracking-test", f"sqlite:///{tmp_path / 'runs.db'}")
    with tracker.start_run("r") as run:
        run.client = CountingClient(run.client)
        yield tracker, run


def test_log_sends_params_metrics_and_tags_in_one_request(mlflow_run):
    tracker, run = mlflow_run
    run.log(params={"lr": 0.1, "batch_size": 32}, metrics={"loss": 0.5, "auc": 0.9}, step=3, tags={"state": "ok"})
    assert run.client.batches == 1
    record = tracker.get_run(run.id)
    assert record.params == {"lr": "0.1", "batch_size": "32"}
    assert record.metrics == {"loss": 0.5, "auc": 0.9}
    assert record.tags["state"] == "ok"
    assert [m.step for m in tracker.client.get_metric_history(run.id, "loss")] == [3]


def test_log_splits_more_than_100_params_over_requests(mlflow_run):
    tracker, run = mlflow_run
    run.log(params={f"p{i}": i for i in range(150)}, metrics={"loss": 1.0})
    assert run.client.batches == 2  # MLflow refuses more than 100 params in one request
    record = tracker.get_run(run.id)
    assert len(record.params) == 150 and record.params["p149"] == "149" and record.metrics == {"loss": 1.0}


def test_log_with_nothing_sends_nothing(mlflow_run):
    _, run = mlflow_run
    run.log()
    run.log(params={}, metrics={}, tags={})
    assert run.client.batches == 0


def test_log_in_memory():
    tracker = MemoryTracker()
    with tracker.start_run("r") as run:
        run.log(params={"lr": 0.1}, metrics={"loss": 0.5}, step=2, tags={"state": "ok"})
    assert run.params == {"lr": "0.1"} and run.metrics == {"loss": [(2, 0.5)]} and run.tags["state"] == "ok"


def test_tables_are_mlflow_tables_sent_with_the_metrics(mlflow_run, monkeypatch):
    tracker, run = mlflow_run
    dev = pd.DataFrame({"id": ["a", "b"], "probability": [0.25, 0.75]})
    run.log(metrics={"auc": 0.9}, tables={"predictions/dev.json": dev, "predictions/test.json": dev.iloc[:1]})
    assert run.client.batches == 1  # the metrics and the tables' tag in one request
    pd.testing.assert_frame_equal(tracker.read_table(run.id, "predictions/dev.json"), dev)
    # MLflow finds and reads them as its own tables (its load_table searches the global tracking URI)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracker.tracking_uri)
    loaded = tracker.client.load_table(tracker.experiment_id, "predictions/test.json", run_ids=[run.id])
    assert loaded["id"].tolist() == ["a"]

    again = tracker.run(run.id)  # another handle to the run adds to its list of tables
    again.log_table(dev.iloc[::-1], "predictions/dev.json")  # replaces the earlier table of that name
    again.log_table(dev, "metrics/folds.json")
    listed = json.loads(tracker.get_run(run.id).tags["mlflow.loggedArtifacts"])
    assert [t["path"] for t in listed] == ["predictions/dev.json", "predictions/test.json", "metrics/folds.json"]
    assert tracker.read_table(run.id, "predictions/dev.json")["id"].tolist() == ["b", "a"]


def test_experiments_are_made_as_model_training_experiments(tmp_path):
    # MLflow 3's UI opens an experiment without a kind on its GenAI overview (traces), not on its runs.
    tracker = MlflowTracker("kind-test", f"sqlite:///{tmp_path / 'runs.db'}")
    experiment = tracker.client.get_experiment(tracker.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
