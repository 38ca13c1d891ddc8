"""Finding a study's run in MLflow: by experiment name (its latest study) or by the id of any run in it."""

from __future__ import annotations

from reproai.errors import ReproaiError, TrackingError
from reproai.tracking._base import RunRecord, default_tracking_uri, existing_store
from reproai.tracking._mlflow import MlflowTracker
from reproai.tracking._tags import Level, Tag

__all__ = ["find_study"]


def _study_of(tracker: MlflowTracker, run: RunRecord, reference: str) -> RunRecord:
    study_id = run.tags.get(Tag.STUDY_ID)
    if not study_id:
        raise ReproaiError(f"Run {reference} was not made by reproai (it has no {Tag.STUDY_ID} tag).")
    return run if study_id == run.id else tracker.get_run(study_id)


def find_study(
    reference: str, tracking_uri: str | None = None, *, finished: bool = True
) -> tuple[MlflowTracker, RunRecord]:
    """The study named by ``reference``: an MLflow experiment name (its latest finished study, or with
    ``finished=False`` its latest study), or the id of a study run or of any run inside a study."""
    existing_store(tracking_uri or default_tracking_uri())  # before trying the reference two ways
    try:
        tracker = MlflowTracker(reference, tracking_uri, create=False)
    except TrackingError as by_name:
        try:
            tracker, run = MlflowTracker.for_run(reference, tracking_uri)
        except TrackingError as by_id:
            raise TrackingError(f"{reference!r} is neither an experiment name nor a run id. {by_name}") from by_id
        return tracker, _study_of(tracker, run, reference)
    studies = [r for r in tracker.find_runs({Tag.LEVEL: Level.STUDY}) if Tag.RERUN_OF not in r.tags]
    if not finished and studies:
        return tracker, studies[0]
    done = [r for r in studies if r.tags.get(Tag.STATE) == "complete"]
    if not done:
        if not finished:
            raise ReproaiError(f"Experiment {reference!r} has no study yet.")
        raise ReproaiError(
            f"Experiment {reference!r} at {tracker.tracking_uri!r} has no finished study "
            f"({len(studies)} unfinished). Finish it with `reproai run` (it resumes), or watch it "
            "with `reproai status`."
        )
    return tracker, done[0]
