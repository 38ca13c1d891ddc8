"""One contract, every tracker: the MLflow, in-memory and null trackers behave alike where they track,
and the null tracker accepts every call and keeps nothing."""

import pandas as pd
import pytest

from reproai.errors import TrackingError
from reproai.tracking import MemoryTracker, MlflowTracker, NullTracker, Tracker


@pytest.fixture(params=["mlflow", "memory", "null"])
def tracker(request, tmp_path) -> Tracker:
    if request.param == "mlflow":
        return MlflowTracker("contract", f"sqlite:///{tmp_path / 'runs.db'}")
    return MemoryTracker() if request.param == "memory" else NullTracker()


def test_every_tracker_is_a_tracker(tracker):
    assert isinstance(tracker, Tracker)


def test_runs_are_logged_found_read_and_ended(tracker):
    keeps = not isinstance(tracker, NullTracker)
    table = pd.DataFrame({"id": ["a", "b"], "probability": [0.25, 0.75]})
    with tracker.start_run("parent", tags={"reproai.level": "study", "k": 1}) as parent:
        child = tracker.open_run("child", tags={"reproai.level": "fit"}, parent=parent)
        child.log(
            params={"lr": 0.1},
            metrics={"loss": 0.5},
            step=1,
            tags={"state": "ok"},
            tables={"predictions/dev.json": table},
        )
        child.log_metrics({"loss": 0.25}, step=2, synchronous=False)
        child.log_text("hello", "notes/a.txt")
        child.log_dict({"x": [1, 2]}, "d.json")
        child.flush()
        tracker.set_status(child.id, "FINISHED")
    found = tracker.find_runs({"reproai.level": "fit"})
    if not keeps:
        assert found == []
        with pytest.raises(TrackingError):
            tracker.get_run(child.id)
        return
    assert [r.id for r in found] == [child.id]
    record = tracker.get_run(child.id)
    assert record.status == "FINISHED" and record.params == {"lr": "0.1"} and record.metrics["loss"] == 0.25
    assert record.tags["state"] == "ok"
    assert tracker.read_text(child.id, "notes/a.txt") == "hello"
    assert tracker.read_table(child.id, "predictions/dev.json").equals(table)
    assert tracker.find_runs({"k": 1}, status="FINISHED")[0].id == parent.id
    assert tracker.find_runs({"k": 1}, status="RUNNING") == []


def test_a_run_ended_by_an_error_or_a_stop(tracker):
    with pytest.raises(ValueError), tracker.start_run("bad", tags={"t": "bad"}):
        raise ValueError("boom")
    with pytest.raises(KeyboardInterrupt), tracker.start_run("stopped", tags={"t": "stopped"}):
        raise KeyboardInterrupt
    if isinstance(tracker, NullTracker):
        return
    assert tracker.find_runs({"t": "bad"})[0].status == "FAILED"
    assert tracker.find_runs({"t": "stopped"})[0].status == "KILLED"


def test_open_runs_stay_running_until_ended_and_can_resume(tracker):
    run = tracker.open_run("shared", tags={"t": "open"})
    tracker.run(run.id).set_tags({"more": "x"})
    if isinstance(tracker, NullTracker):
        tracker.set_status(run.id, "FINISHED")
        return
    assert tracker.get_run(run.id).status == "RUNNING" and tracker.get_run(run.id).tags["more"] == "x"
    tracker.set_status(run.id, "FINISHED")
    with tracker.resume_run(run.id) as again:
        again.log_metrics({"m": 1.0})
        assert tracker.get_run(run.id).status == "RUNNING"
    assert tracker.get_run(run.id).status == "FINISHED"
