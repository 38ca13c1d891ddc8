"""One outer fold: search on its inner folds (or just fit), refit on outer-train, test once."""

from __future__ import annotations

import json
import statistics
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.trial import TrialState

from reproai import stopping
from reproai.backbones import BackboneInfo
from reproai.config.schema import Experiment
from reproai.config.tree import has_search_space, resolve
from reproai.console import say
from reproai.coordination import claim, claimed, heartbeat, once, release
from reproai.cv import OuterFold, Splits
from reproai.data.source import ImageSet
from reproai.errors import DiskFullError, ReproaiError, SearchFailedError, TrackingError
from reproai.metrics import Direction, as_direction, metric_direction, youden_threshold
from reproai.models import recycle_model
from reproai.search import (
    fail_dead_trials,
    finished_trials,
    is_done,
    make_pruner,
    make_sampler,
)
from reproai.seeding import derive_seed
from reproai.tags import Level, Tag
from reproai.tracking import Run, RunRecord, Tracker, end_status
from reproai.training import FitResult, fit
from reproai.trials import quiet_optuna, trial_id
from reproai.workers import worker_id

__all__ = ["StudyContext", "FoldOutcome", "run_outer_fold", "fold_outcome", "fit_seed"]


@dataclass
class StudyContext:
    """What every outer fold of a study shares."""

    experiment: Experiment
    data: ImageSet
    info: BackboneInfo
    splits: Splits
    tracker: Tracker
    storage: optuna.storages.BaseStorage
    study_run: Run
    optuna_prefix: str
    claims: str
    progress: bool = True

    @property
    def metric(self) -> str:
        return self.experiment.search.metric

    @property
    def direction(self) -> Direction:
        return as_direction(self.experiment.search.direction or metric_direction(self.metric))


@dataclass
class FoldOutcome:
    """An outer fold's test metrics, its test predictions, and the parameters chosen for it."""

    metrics: dict[str, float]
    table: pd.DataFrame
    params: dict[str, Any]


def fit_seed(root: int, kind: str, repeat: int, fold: int, inner: int | None = None) -> int:
    """The seed of one fit. Every trial uses the same seed on the same inner fold, so that trials
    differ only by their parameters (common random numbers make the comparison fairer)."""
    return derive_seed(root, kind, repeat, fold, *(() if inner is None else (inner,)))


def _tags(ctx: StudyContext, fold: OuterFold) -> dict[str, Any]:
    return {Tag.STUDY_ID: ctx.study_run.id, Tag.OUTER_FOLD: fold.fold, Tag.REPEAT: fold.repeat, Tag.WORKER: worker_id()}


def _log_fit(run: Run, ctx: StudyContext, result: FitResult, record: dict[str, Any]) -> None:
    """Log a fit's metrics, prediction tables and what is needed to rerun it exactly (fit.json)."""
    metrics = {
        **{f"dev_{k}": v for k, v in result.dev_metrics.items()},
        **{f"test_{k}": v for k, v in result.test_metrics.items()},
    }
    if result.threshold is not None:
        metrics["threshold"] = result.threshold
    run.log_dict({**record, "threshold": result.threshold, "best_epochs": result.best_epochs}, "fit.json")
    tables = {
        f"predictions/{split}.json": preds.table(ctx.data, result.threshold)
        for split, preds in (("dev", result.dev), ("test", result.test))
        if preds is not None
    }
    run.log(metrics=metrics, tables=tables)


def is_trial_fault(e: BaseException) -> bool:
    """Whether an error fails only its trial: sampled parameters that cannot train (a batch larger
    than the training set, an optimizer refusing a value, running out of memory). A broken
    environment (tracking, storage, disk) or a stop request stops the study instead."""
    if isinstance(e, (TrackingError, DiskFullError)) or not isinstance(e, Exception):
        return False
    return isinstance(e, (ReproaiError, ValueError, RuntimeError, ArithmeticError))


def _reason(e: BaseException) -> str:
    if isinstance(e, ReproaiError):
        return str(e)
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


# Intermediate values: the dev metric after each epoch of the first inner fold at steps 0, 1, ...;
# the running mean after inner fold j at step _FOLD_STEP + j, the same for every trial.
_FOLD_STEP = 10_000


def _run_fit(
    ctx: StudyContext,
    experiment: Experiment,
    parent: Run,
    name: str,
    tags: dict[str, Any],
    record: dict[str, Any],
    **kwargs: Any,
) -> FitResult:
    """One tracked fit. The study needs its predictions and metrics, not its model: the model's backbone
    goes to the next fit (``result.model`` is left without one)."""
    with ctx.tracker.start_run(name, tags={**tags, Tag.LEVEL: Level.FIT}, parent=parent) as run:
        run.log_params(
            {
                "seed": record["seed"],
                "kind": record["kind"],
                **{f"n_{k}": len(kwargs[k]) for k in ("train", "dev", "test") if kwargs.get(k) is not None},
            }
        )
        result = fit(
            experiment.model,
            experiment.training,
            ctx.data,
            ctx.info,
            metric=ctx.metric,
            seed=record["seed"],
            tracker=ctx.tracker,
            parent=run,
            tags=tags,
            progress=ctx.progress,
            **kwargs,
        )
        _log_fit(run, ctx, result, record)
    if not experiment.training.compile:  # a compiled model keeps its own references to the backbone
        recycle_model(result.model, experiment.model)
    return result


def _objective(ctx: StudyContext, fold: OuterFold, fold_run: Run) -> Callable[[optuna.Trial], float]:
    exp = ctx.experiment

    def objective(trial: optuna.Trial) -> float:
        config = resolve(exp, trial)
        tags = {**_tags(ctx, fold), Tag.TRIAL: trial.number}
        with ctx.tracker.start_run(
            f"trial-{trial.number}", tags={**tags, Tag.LEVEL: Level.TRIAL}, parent=fold_run
        ) as run:
            # The distributions let analysis rebuild the search from MLflow alone (history, importances).
            dists = {k: optuna.distributions.distribution_to_json(d) for k, d in trial.distributions.items()}
            run.log(
                params=trial.params,
                tags={
                    Tag.OPTUNA_STUDY: trial.study.study_name,
                    Tag.DISTRIBUTIONS: json.dumps(dists, sort_keys=True)[:5000],
                },
            )
            scores, epochs, dev_labels, dev_proba = [], [], [], []

            def report_epoch(i: int, row: dict[str, float]) -> None:
                value = row.get(f"dev_{ctx.metric}")
                if value is None or not np.isfinite(value):
                    return
                trial.report(value, i)
                if trial.should_prune():
                    raise optuna.TrialPruned(
                        f"dev {ctx.metric} {value:.4f} after epoch {i + 1} of the first inner "
                        "fold is worse than the median of earlier trials"
                    )

            started = 0  # inner folds started, tagged with the trial's end state
            try:
                for j, inner in enumerate(fold.inner):
                    record = {
                        "kind": "inner",
                        "repeat": fold.repeat,
                        "fold": fold.fold,
                        "inner_fold": j,
                        "params": trial.params,
                        "seed": fit_seed(exp.seed, "inner", fold.repeat, fold.fold, j),
                    }
                    started = j + 1
                    result = _run_fit(
                        ctx,
                        config,
                        run,
                        f"inner-{j}",
                        {**tags, Tag.INNER_FOLD: j},
                        record,
                        train=inner.train,
                        dev=inner.dev,
                        on_epoch=report_epoch if j == 0 else None,
                    )
                    scores.append(result.dev_metrics[ctx.metric])
                    epochs.append([result.best_epochs.get(p.name, p.epochs) for p in config.training.phases])
                    assert result.dev is not None  # fit() predicts every non-empty dev set
                    dev_labels.append(ctx.data.labels[inner.dev])
                    dev_proba.append(result.dev.proba)
                    running = float(np.mean(scores))
                    trial.report(running, _FOLD_STEP + j)
                    run.log_metrics({f"dev_{ctx.metric}_running": running}, step=j)
                    if trial.should_prune():
                        raise optuna.TrialPruned(
                            f"running mean {running:.4f} after inner fold {j} is worse than the "
                            "median of earlier trials"
                        )
            except optuna.TrialPruned:
                run.set_tags({Tag.STATE: "pruned", Tag.INNER_FOLDS_RUN: started})
                raise
            except Exception as e:
                if is_trial_fault(e):
                    run.set_tags({Tag.STATE: "failed", Tag.ERROR: _reason(e)[:5000], Tag.INNER_FOLDS_RUN: started})
                    run.log_text(traceback.format_exc(), "error.txt")
                raise
            value = float(np.mean(scores))
            # The refit trains each phase for the median of its best epochs over the inner folds, and
            # uses the threshold fitted on the pooled inner-dev predictions: never anything from test data.
            trial.set_user_attr("epochs", [int(round(statistics.median(col))) for col in zip(*epochs, strict=True)])
            if ctx.data.num_classes == 2:
                trial.set_user_attr(
                    "threshold", youden_threshold(np.concatenate(dev_labels), np.concatenate(dev_proba))
                )
            run.log(metrics={f"dev_{ctx.metric}": value}, tags={Tag.STATE: "complete", Tag.INNER_FOLDS_RUN: started})
            return value

    return objective


def _load_search(ctx: StudyContext, fold: OuterFold) -> optuna.Study:
    exp, search = ctx.experiment, ctx.experiment.search
    with quiet_optuna():
        return optuna.create_study(
            study_name=f"{ctx.optuna_prefix}/outer-{fold.key}",
            storage=ctx.storage,
            load_if_exists=True,
            direction=ctx.direction,
            sampler=make_sampler(search, exp, derive_seed(exp.seed, "sampler", fold.repeat, fold.fold)),
            pruner=make_pruner(search, len(fold.inner)),
        )


def _close_runs_of(ctx: StudyContext, fold: OuterFold, dead: dict[int, str]) -> None:
    """End as FAILED the runs of trials that died with their worker (``dead``: trial number -> worker).

    That is the trial, fit and phase runs the dead workers left RUNNING (MLflow never ends them), and
    a trial run that ended FINISHED in the moment before its worker died, before the result reached
    the storage: the trial is failed and run again, so its run must not read as complete.
    """
    for wid in set(dead.values()):
        for r in ctx.tracker.find_runs({Tag.STUDY_ID: ctx.study_run.id, Tag.WORKER: wid}, status="RUNNING"):
            if r.tags.get(Tag.LEVEL) in (Level.TRIAL, Level.FIT, Level.PHASE):
                ctx.tracker.set_status(r.id, "FAILED")
    for number in dead:
        found = ctx.tracker.find_runs(
            {
                Tag.STUDY_ID: ctx.study_run.id,
                Tag.OUTER_FOLD: fold.fold,
                Tag.REPEAT: fold.repeat,
                Tag.TRIAL: number,
                Tag.LEVEL: Level.TRIAL,
            },
            status="FINISHED",
        )
        for r in found:
            ctx.tracker.run(r.id).set_tags(
                {
                    Tag.STATE: "failed",
                    Tag.ERROR: "its worker died before the trial's result reached the storage; the trial is run again",
                }
            )
            ctx.tracker.set_status(r.id, "FAILED")


def _run_trial(ctx: StudyContext, study: optuna.Study, objective: Callable[[optuna.Trial], float]) -> TrialState:
    """Ask for a trial, run it under a heartbeat, and tell its outcome; a surplus trial (more than
    ``n_trials`` would be live, because another worker asked at the same moment) is not run."""
    n_trials = ctx.experiment.search.n_trials
    stopping.check()
    trial = study.ask()
    earlier = [t for t in study.get_trials(deepcopy=False) if t.number < trial.number]
    if sum(is_done(t) or t.state == TrialState.RUNNING for t in earlier) >= n_trials:
        ctx.storage.set_trial_user_attr(trial_id(trial), "failed_reason", "surplus: n_trials were already live")
        study.tell(trial, state=TrialState.FAIL)
        return TrialState.FAIL
    with heartbeat(ctx.storage, trial_id(trial)):
        try:
            value = objective(trial)
        except optuna.TrialPruned:
            study.tell(trial, state=TrialState.PRUNED)
            return TrialState.PRUNED
        except BaseException as e:
            fault = is_trial_fault(e)
            if fault:  # the sampled parameters cannot train (or crashed the fit): the search goes on
                ctx.storage.set_trial_user_attr(trial_id(trial), "error", True)
            reason = _reason(e) if fault else f"stopped: {_reason(e)}"
            ctx.storage.set_trial_user_attr(trial_id(trial), "failed_reason", reason[:2000])
            study.tell(trial, state=TrialState.FAIL)
            if not fault:
                raise
            if ctx.progress:
                say(
                    f"{study.study_name.rsplit('/', 1)[-1]}: trial {trial.number} failed ({reason}); "
                    "the search goes on."
                )
            return TrialState.FAIL
    study.tell(trial, value)
    return TrialState.COMPLETE


def _search(ctx: StudyContext, fold: OuterFold, fold_run: Run) -> bool:
    """Take part in the fold's search until it has ``n_trials`` finished trials: True when it has,
    False when the last trials are still running elsewhere (the caller comes back later)."""
    from tqdm.auto import tqdm

    search = ctx.experiment.search
    study = _load_search(ctx, fold)
    objective = _objective(ctx, fold, fold_run)
    started = time.monotonic()
    bar = tqdm(
        total=search.n_trials,
        initial=finished_trials(study),
        desc=f"outer {fold.key} trials",
        unit="trial",
        disable=not ctx.progress,
        leave=False,
    )
    with bar:
        while True:
            dead = fail_dead_trials(study, ctx.storage)
            if dead:
                _close_runs_of(ctx, fold, dead)
                fold_run.set_tags({Tag.RETRIED_TRIALS: ",".join(map(str, sorted(dead)))})
            trials = study.get_trials(deepcopy=False)
            done = sum(is_done(t) for t in trials)
            bar.update(done - bar.n)
            running = sum(t.state == TrialState.RUNNING for t in trials)
            waiting = sum(t.state == TrialState.WAITING for t in trials)
            timed_out = search.timeout is not None and time.monotonic() - started > search.timeout
            if done >= search.n_trials or timed_out:
                if any(t.state == TrialState.COMPLETE for t in trials):
                    return True
                if running == 0:
                    raise SearchFailedError(_failure_summary(fold, trials))
                return False  # nothing to refit yet: the trials still running elsewhere may complete
            if done + running >= search.n_trials and not waiting:
                return False  # the last trials run in other workers
            _run_trial(ctx, study, objective)


def _failure_summary(fold: OuterFold, trials: list[optuna.trial.FrozenTrial]) -> str:
    failed = Counter(t.user_attrs.get("failed_reason", "unknown") for t in trials if t.user_attrs.get("error"))
    pruned = sum(t.state == TrialState.PRUNED for t in trials)
    lines = [f"  {n} x {reason}" for reason, n in failed.most_common(5)]
    return (
        f"Outer fold {fold.key}: no trial completed ({sum(failed.values())} failed, {pruned} pruned), so there "
        "is nothing to refit. Reasons:\n"
        + "\n".join(lines or ["  (every trial was pruned)"])
        + "\nFix the search space (or the config) and run again; a trial's run holds its traceback (error.txt)."
    )


def _fold_record(ctx: StudyContext, fold: OuterFold) -> RunRecord | None:
    found = ctx.tracker.find_runs(
        {
            Tag.LEVEL: Level.OUTER_FOLD,
            Tag.STUDY_ID: ctx.study_run.id,
            Tag.OUTER_FOLD: fold.fold,
            Tag.REPEAT: fold.repeat,
        }
    )
    return found[0] if found else None


def fold_outcome(tracker: Tracker, record: RunRecord) -> FoldOutcome:
    """The outcome of a finished outer fold, read back from its run."""
    table = tracker.read_table(record.id, "predictions/test.json")
    metrics = {k[len("test_") :]: v for k, v in record.metrics.items() if k.startswith("test_")}
    return FoldOutcome(metrics, table, json.loads(record.tags.get(Tag.BEST_PARAMS, "{}")))


def _refit(ctx: StudyContext, fold: OuterFold, fold_run: Run) -> None:
    """Refit on outer-train with the best trial's parameters (or fit the fixed config) and test once."""
    exp = ctx.experiment
    tags = _tags(ctx, fold)
    if has_search_space(exp):
        best = _load_search(ctx, fold).best_trial
        params = dict(best.params)
        record = {
            "kind": "refit",
            "repeat": fold.repeat,
            "fold": fold.fold,
            "params": params,
            "seed": fit_seed(exp.seed, "refit", fold.repeat, fold.fold),
            "epochs": best.user_attrs["epochs"],
        }
        result = _run_fit(
            ctx,
            resolve(exp, params),
            fold_run,
            "refit",
            {**tags, Tag.REFIT: "true"},
            record,
            train=fold.train,
            test=fold.test,
            epochs=best.user_attrs["epochs"],
            threshold=best.user_attrs.get("threshold"),
        )
        fold_run.log_params({f"best.{k}": v for k, v in params.items()})
        assert best.value is not None  # the best trial is a complete one, which has a value
        fold_run.log_metrics({f"best_dev_{ctx.metric}": best.value})
        fold_run.set_tags({Tag.BEST_TRIAL: best.number})
    else:
        params = {}
        inner = fold.inner[0]
        record = {
            "kind": "single",
            "repeat": fold.repeat,
            "fold": fold.fold,
            "inner_fold": 0,
            "params": {},
            "seed": fit_seed(exp.seed, "fit", fold.repeat, fold.fold),
        }
        result = _run_fit(
            ctx,
            exp,
            fold_run,
            "fit",
            {**tags, Tag.INNER_FOLD: 0},
            record,
            train=inner.train,
            dev=inner.dev,
            test=fold.test,
        )
    assert result.test is not None  # fit() predicts every non-empty test set, and check_splits refuses empty ones
    # The state tag comes with the fold's results, in one request: a fold marked complete has them all.
    fold_run.log(
        metrics={
            **{f"test_{k}": v for k, v in result.test_metrics.items()},
            **({"threshold": result.threshold} if result.threshold is not None else {}),
        },
        tags={Tag.STATE: "complete", Tag.BEST_PARAMS: json.dumps(params, sort_keys=True)[:5000]},
        tables={"predictions/test.json": result.test.table(ctx.data, result.threshold)},
    )


def run_outer_fold(ctx: StudyContext, fold: OuterFold) -> bool:
    """Take part in one outer fold: its search (when the config has search spaces), then, in exactly
    one worker, the refit and the test. True once the fold is complete, whoever completed it."""
    name = f"{ctx.claims}/outer-{fold.key}"
    if claimed(ctx.storage, f"{name}/refit") is not None:
        return True

    def create_fold_run() -> dict[str, Any]:
        found = _fold_record(ctx, fold)  # a fold run from before claims existed for it
        if found is not None:
            return {"run_id": found.id}
        run = ctx.tracker.open_run(
            f"outer-{fold.key}", tags={**_tags(ctx, fold), Tag.LEVEL: Level.OUTER_FOLD}, parent=ctx.study_run
        )
        return {"run_id": run.id}

    run_id = once(ctx.storage, f"{name}/run", create_fold_run)[0]["run_id"]
    # A joining worker leaves the fold run's status alone: it could undo the FINISHED of a refit that
    # another worker completed a moment ago. The refit marks it RUNNING, then FINISHED.
    fold_run = ctx.tracker.run(run_id)
    try:
        if has_search_space(ctx.experiment) and not _search(ctx, fold, fold_run):
            return False
    except BaseException as e:
        ctx.tracker.set_status(run_id, end_status(e))
        raise
    trial = claim(ctx.storage, f"{name}/refit")
    if trial is None:
        return claimed(ctx.storage, f"{name}/refit") is not None
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
