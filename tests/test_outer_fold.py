"""An outer fold's search loop, against an Optuna study that other workers share."""

import os
import socket

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from reproai import CrossValidation, Data, Experiment, Model, Phase, Search, Training, hp
from reproai.errors import SearchFailedError
from reproai.models._backbones import backbone_info
from reproai.nested._fits import StudyContext
from reproai.nested._inner_search import load_search, search
from reproai.nested._splits import make_splits
from reproai.runtime._workers import worker_id
from reproai.tracking import MemoryTracker


@pytest.fixture
def context():
    """A fold whose search has timed out: ``timeout`` is one nanosecond."""
    exp = Experiment(
        name="t",
        data=Data.digits(limit=60),
        model=Model(backbone="small_cnn", pretrained=False),
        training=Training(batch_size=8, phases=[Phase("fit", epochs=1, lr=hp.float(1e-3, 1e-1))]),
        cv=CrossValidation(outer_folds=2, inner_folds=2, final_model=False),
        search=Search(n_trials=2, timeout=1e-9),
    )
    labels = np.array([0, 1] * 30)
    splits = make_splits(labels, exp.cv, seed=0)
    tracker = MemoryTracker()
    study_run = tracker.open_run("study")
    ctx = StudyContext(
        experiment=exp,
        data=None,
        info=backbone_info(exp.model),
        splits=splits,
        tracker=tracker,
        storage=optuna.storages.InMemoryStorage(),
        study_run=study_run,
        prefix="t",
        progress=False,
    )
    fold = splits.outer[0]
    return ctx, fold, load_search(ctx, fold), tracker.open_run("fold", parent=study_run)


def _failed(study, n):
    for _ in range(n):
        trial = study.ask()
        study._storage.set_trial_user_attr(trial._trial_id, "error", True)
        study.tell(trial, state=TrialState.FAIL)


def _running_elsewhere(study):
    """A trial another live worker runs (this process stands in for it)."""
    trial = study.ask()
    study._storage.set_trial_user_attr(trial._trial_id, "worker", worker_id())


@pytest.mark.parametrize("n_failed", [1, 2])
def test_no_refit_while_the_only_trials_that_could_complete_run_elsewhere(context, n_failed):
    # Timed out (n_failed=1) or with n_trials done (n_failed=2), but nothing completed: refitting now
    # would find no best trial. The fold waits for the trial that is still running.
    ctx, fold, study, fold_run = context
    _failed(study, n_failed)
    _running_elsewhere(study)
    assert search(ctx, fold, fold_run) is False
    assert [t.state for t in study.get_trials()] == [TrialState.FAIL] * n_failed + [TrialState.RUNNING]


def test_refit_once_a_trial_completed_even_with_others_running(context):
    ctx, fold, study, fold_run = context
    trial = study.ask()
    study.tell(trial, 0.9)
    _running_elsewhere(study)
    assert search(ctx, fold, fold_run) is True


def test_nothing_completed_and_nothing_running_fails_the_search(context):
    ctx, fold, study, fold_run = context
    _failed(study, 1)
    with pytest.raises(SearchFailedError, match="no trial completed"):
        search(ctx, fold, fold_run)


def test_a_trial_whose_worker_died_after_its_run_finished_is_failed_in_mlflow_too(context):
    # The worker ended the trial's run FINISHED and died before Optuna heard the result: the trial is
    # failed and run again, so its run must not read as complete. A completed trial's run stays as it is.
    ctx, fold, study, fold_run = context
    dead = f"{socket.gethostname()}:{os.getpid()}:1"  # this pid with another start time: a process that is gone
    runs = {}
    for number in (0, 1):
        trial = study.ask()
        study._storage.set_trial_user_attr(trial._trial_id, "worker", dead if number else worker_id())
        tags = {
            "reproai.study_id": ctx.study_run.id,
            "reproai.outer_fold": fold.fold,
            "reproai.repeat": fold.repeat,
            "reproai.trial": trial.number,
            "reproai.level": "trial",
        }
        with ctx.tracker.start_run(f"trial-{number}", tags=tags, parent=fold_run) as run:
            run.set_tags({"reproai.state": "complete"})
        runs[number] = run.id
        if number == 0:
            study.tell(trial, 0.9)
    assert search(ctx, fold, fold_run) is True
    assert study.trials[1].state == TrialState.FAIL and "died" in study.trials[1].user_attrs["failed_reason"]
    status = {n: ctx.tracker.get_run(i) for n, i in runs.items()}
    assert status[0].status == "FINISHED" and status[0].tags["reproai.state"] == "complete"
    assert status[1].status == "FAILED" and status[1].tags["reproai.state"] == "failed"
