"""The search inside one fold: Optuna trials, each a fit per inner fold, scored on inner-dev, pruned
on the way, shared among workers, and retried when their worker dies."""

from __future__ import annotations

import json
import statistics
import time
import traceback
from collections import Counter
from collections.abc import Callable

import numpy as np
import optuna
from optuna.trial import TrialState

from reproai._console import say
from reproai.config._tree import resolve
from reproai.errors import SearchFailedError
from reproai.evaluation._metrics import youden_threshold
from reproai.nested._fits import StudyContext, error_text, fold_tags, is_trial_fault, run_fit
from reproai.nested._folds import OuterFold
from reproai.nested._plan import FitPlan
from reproai.nested._sampling import make_pruner, make_sampler
from reproai.runtime import _stopping as stopping
from reproai.runtime._claims import heartbeat
from reproai.runtime._names import fold_search
from reproai.runtime._storage import fail_dead_trials, finished_trials, is_done
from reproai.runtime._trials import quiet_optuna, trial_id
from reproai.tracking import Run
from reproai.tracking._tags import Level, Tag
from reproai.training._seeding import derive_seed

__all__ = ["load_search", "search"]


# Intermediate values: the dev metric after each epoch of the first inner fold at steps 0, 1, ...;
# the running mean after inner fold j at step _FOLD_STEP + j, the same for every trial.
_FOLD_STEP = 10_000


def _objective(ctx: StudyContext, fold: OuterFold, fold_run: Run) -> Callable[[optuna.Trial], float]:
    exp = ctx.experiment

    def objective(trial: optuna.Trial) -> float:
        config = resolve(exp, trial)
        tags = {**fold_tags(ctx, fold), Tag.TRIAL: trial.number}
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
                    started = j + 1
                    plan = FitPlan.inner(exp, fold, j, trial.params)
                    result = run_fit(ctx, plan, run, tags, on_epoch=report_epoch if j == 0 else None)
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
                    run.set_tags({Tag.STATE: "failed", Tag.ERROR: error_text(e)[:5000], Tag.INNER_FOLDS_RUN: started})
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


def load_search(ctx: StudyContext, fold: OuterFold) -> optuna.Study:
    exp, search = ctx.experiment, ctx.experiment.search
    with quiet_optuna():
        return optuna.create_study(
            study_name=fold_search(ctx.prefix, fold.key),
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
                Tag.OUTER_FOLD: fold.tag,
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


def _run_trial(
    ctx: StudyContext, fold: OuterFold, study: optuna.Study, objective: Callable[[optuna.Trial], float]
) -> TrialState:
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
            reason = error_text(e) if fault else f"stopped: {error_text(e)}"
            ctx.storage.set_trial_user_attr(trial_id(trial), "failed_reason", reason[:2000])
            study.tell(trial, state=TrialState.FAIL)
            if not fault:
                raise
            if ctx.progress:
                where = "final search" if fold.final else f"outer fold {fold.key}"
                say(f"{where}: trial {trial.number} failed ({reason}); the search goes on.")
            return TrialState.FAIL
    study.tell(trial, value)
    return TrialState.COMPLETE


def search(ctx: StudyContext, fold: OuterFold, fold_run: Run) -> bool:
    """Take part in the fold's search until it has ``n_trials`` finished trials: True when it has,
    False when the last trials are still running elsewhere (the caller comes back later)."""
    from tqdm.auto import tqdm

    search = ctx.experiment.search
    study = load_search(ctx, fold)
    objective = _objective(ctx, fold, fold_run)
    started = time.monotonic()
    bar = tqdm(
        total=search.n_trials,
        initial=finished_trials(study),
        desc="final trials" if fold.final else f"outer {fold.key} trials",
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
            _run_trial(ctx, fold, study, objective)


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
