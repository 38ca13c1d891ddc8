"""One outer fold: search on its inner folds (or just fit), refit on outer-train, test once. The final
fold is the same procedure on all the data, without a test set; its refit is the model to deploy."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import optuna
import pandas as pd

from reproai.config._tree import has_search_space
from reproai.nested._final import log_fitted_model, logs_model
from reproai.nested._fits import StudyContext, fold_tags, run_fit
from reproai.nested._folds import OuterFold
from reproai.nested._inner_search import load_search, search
from reproai.nested._plan import FitPlan
from reproai.runtime._claims import claim, claimed, heartbeat, once, release
from reproai.runtime._names import fold_claim
from reproai.runtime._trials import trial_id
from reproai.tracking import Run, RunRecord, Tracker, end_status
from reproai.tracking._tags import Level, Tag

__all__ = ["FoldOutcome", "run_outer_fold", "fold_outcome"]


@dataclass
class FoldOutcome:
    """An outer fold's test metrics, its test predictions, and the parameters chosen for it."""

    metrics: dict[str, float]
    table: pd.DataFrame
    params: dict[str, Any]


def _level(fold: OuterFold) -> str:
    return Level.FINAL if fold.final else Level.OUTER_FOLD


def _fold_record(ctx: StudyContext, fold: OuterFold) -> RunRecord | None:
    found = ctx.tracker.find_runs(
        {Tag.LEVEL: _level(fold), Tag.STUDY_ID: ctx.study_run.id, Tag.OUTER_FOLD: fold.tag, Tag.REPEAT: fold.repeat}
    )
    return found[0] if found else None


def fold_outcome(tracker: Tracker, record: RunRecord) -> FoldOutcome:
    """The outcome of a finished outer fold, read back from its run."""
    table = tracker.read_table(record.id, "predictions/test.json")
    metrics = {k[len("test_") :]: v for k, v in record.metrics.items() if k.startswith("test_")}
    return FoldOutcome(metrics, table, json.loads(record.tags.get(Tag.BEST_PARAMS, "{}")))


def _refit(ctx: StudyContext, fold: OuterFold, fold_run: Run) -> None:
    """Refit on outer-train with the best trial's parameters (or fit the fixed config) and test once; log
    the model when the study keeps it (see :mod:`reproai.nested._final`)."""
    exp = ctx.experiment
    tags = fold_tags(ctx, fold)
    keep = logs_model(ctx, fold)
    if has_search_space(exp):
        best = load_search(ctx, fold).best_trial
        params = dict(best.params)
        plan = FitPlan.refit(exp, fold, params, best.user_attrs["epochs"], best.user_attrs.get("threshold"))
        result = run_fit(ctx, plan, fold_run, tags, keep_model=keep)
        fold_run.log_params({f"best.{k}": v for k, v in params.items()})
        assert best.value is not None  # the best trial is a complete one, which has a value
        fold_run.log_metrics({f"best_dev_{ctx.metric}": best.value})
        fold_run.set_tags({Tag.BEST_TRIAL: best.number})
    else:
        params = {}
        plan = FitPlan.single(exp, fold)
        result = run_fit(ctx, plan, fold_run, tags, keep_model=keep)
    if keep:
        if ctx.estimate is None and result.test is not None:  # one outer fold: its test score is the estimate
            ctx.estimate = {"mean": result.test_metrics[ctx.metric], "n": 1}
        log_fitted_model(ctx, fold, fold_run, result, ctx.data_for(plan.config(exp)))
    # The state tag comes with the fold's results, in one request: a fold marked complete has them all.
    fold_run.log(
        metrics={
            **{f"test_{k}": v for k, v in result.test_metrics.items()},
            **({"threshold": result.threshold} if result.threshold is not None else {}),
        },
        tags={Tag.STATE: "complete", Tag.BEST_PARAMS: json.dumps(params, sort_keys=True)[:5000]},
        tables={"predictions/test.json": result.test.table(ctx.data, result.threshold)} if result.test else {},
    )


def run_outer_fold(ctx: StudyContext, fold: OuterFold) -> bool:
    """Take part in one outer fold: its search (when the config has search spaces), then, in exactly
    one worker, the refit and the test. True once the fold is complete, whoever completed it."""
    refit_claim = fold_claim(ctx.prefix, fold.key, "refit")
    if claimed(ctx.storage, refit_claim) is not None:
        return True

    def create_fold_run() -> dict[str, Any]:
        found = _fold_record(ctx, fold)  # a fold run from before claims existed for it
        if found is not None:
            return {"run_id": found.id}
        name = "final" if fold.final else f"outer-{fold.key}"
        run = ctx.tracker.open_run(name, tags={**fold_tags(ctx, fold), Tag.LEVEL: _level(fold)}, parent=ctx.study_run)
        return {"run_id": run.id}

    run_id = once(ctx.storage, fold_claim(ctx.prefix, fold.key, "run"), create_fold_run)[0]["run_id"]
    # A joining worker leaves the fold run's status alone: it could undo the FINISHED of a refit that
    # another worker completed a moment ago. The refit marks it RUNNING, then FINISHED.
    fold_run = ctx.tracker.run(run_id)
    try:
        if has_search_space(ctx.experiment) and not search(ctx, fold, fold_run):
            return False
    except BaseException as e:
        ctx.tracker.set_status(run_id, end_status(e))
        raise
    trial = claim(ctx.storage, refit_claim)
    if trial is None:
        return claimed(ctx.storage, refit_claim) is not None
    ctx.tracker.set_status(run_id, "RUNNING")
    with heartbeat(ctx.storage, trial_id(trial)):
        try:
            _refit(ctx, fold, fold_run)
        except BaseException as e:
            release(trial, reason=f"{type(e).__name__}: {e}")
            ctx.tracker.set_status(run_id, end_status(e) if not isinstance(e, optuna.TrialPruned) else "FAILED")
            raise
    ctx.tracker.set_status(run_id, "FINISHED")
    release(trial, value={"run_id": run_id})
    return True
