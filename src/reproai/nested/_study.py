"""Run an experiment: nested cross-validation with the search inside each outer fold, tracked,
resumable. This is the orchestration layer; the pieces it calls know nothing of each other.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from reproai.config._loader import LoadedConfig
from reproai.config._schema import Experiment
from reproai.config._space import Space
from reproai.config._tree import child_items, first_values, has_search_space, to_jsonable
from reproai.data._loading import list_source, load_images
from reproai.data._source import ImageSet
from reproai.errors import ConfigError, DataError, InvalidParamsError
from reproai.evaluation._metrics import metric_bounds
from reproai.evaluation._stats import corrected_t_interval, t_interval
from reproai.models._backbones import BackboneInfo, backbone_info
from reproai.models._network import check_model
from reproai.nested._fits import StudyContext
from reproai.nested._folds import OuterFold, Splits
from reproai.nested._outer_fold import fold_outcome, run_outer_fold
from reproai.nested._provenance import environment
from reproai.nested._sampling import make_sampler
from reproai.nested._split_summary import split_summary, stratification_problems
from reproai.nested._splits import final_fold, has_final_stage, make_splits
from reproai.runtime import _names as names
from reproai.runtime import _stopping as stopping
from reproai.runtime._claims import claimed, last_claim_number, once
from reproai.runtime._storage import open_storage, storage_label
from reproai.runtime._workers import worker_alive, worker_id
from reproai.tracking import MlflowTracker, Run, RunRecord, Tracker, end_status
from reproai.tracking._tags import Level, Tag
from reproai.training._losses import check_loss

__all__ = [
    "StudyResult",
    "run_experiment",
    "study_result",
    "prepare_data",
    "prepare_splits",
    "flatten_config",
    "summarize",
]


@dataclass
class StudyResult:
    """The outcome of a study: per-fold test metrics, their summary, the study run's id, and the URI of
    its final model (``models:/<name>@final``) when it has one."""

    run_id: str
    fold_metrics: pd.DataFrame
    summary: dict[str, dict[str, float]]
    predictions: pd.DataFrame = field(repr=False)
    resumed: bool = False
    final_model: str | None = None
    experiment_id: str | None = None  # the MLflow experiment's id, where the tracker has one


def flatten_config(tree: Any, path: str = "") -> dict[str, Any]:
    """Leaf values of a config tree by dotted path (search spaces shown as their repr)."""
    items = child_items(tree)
    if not items or isinstance(tree, Space):
        return {path: repr(tree) if isinstance(tree, Space) else tree}
    out: dict[str, Any] = {}
    for key, child in items:
        out.update(flatten_config(child, f"{path}.{key}" if path else key))
    return out


def prepare_data(
    experiment: Experiment, *, progress: bool = True, source_name: str | None = None
) -> tuple[ImageSet, BackboneInfo]:
    """List, limit and decode the experiment's data at the model's input size, after building the model
    and calling the loss once to check them (:func:`reproai.models.check_model` and the
    loss check; their errors name ``source_name``, the config file)."""
    info = backbone_info(experiment.model)
    source = list_source(experiment.data, seed=experiment.seed)
    size = info.image_size or source.native_size or 32
    concrete = first_values(experiment)
    try:
        check_model(concrete.model, concrete.training.phases, len(source.classes), size)
        check_loss(concrete.training.loss, len(source.classes))
    except ConfigError as e:
        raise ConfigError(f"{source_name}: {e}" if source_name else str(e)) from e
    data = load_images(
        source,
        size,
        on_error=experiment.data.on_error,
        progress=progress,
        cache_dir=experiment.data.cache_dir,
        intensity=concrete.data.intensity,  # the first value of a searched policy; fits decode theirs
    )
    return data, BackboneInfo(image_size=size, mean=info.mean, std=info.std)


def prepare_splits(experiment: Experiment, data: ImageSet) -> Splits:
    """The study's splits: computed from the labels (and groups), or the outer split read from
    ``cv.splits_file``. Warns, before any work, where groups made stratification poor."""
    cv = experiment.cv
    groups = None if data.groups is None else data.groups.tolist()
    try:
        if cv.splits_file:
            from reproai.nested._splits import splits_from_file

            splits = splits_from_file(
                cv.splits_file, data.labels, cv, seed=experiment.seed, ids=data.ids, groups=groups
            )
        else:
            splits = make_splits(data.labels, cv, seed=experiment.seed, ids=data.ids, groups=groups)
    except DataError as e:  # the splits know classes by index; the user knows them by name
        legend = ", ".join(f"{i} = {c}" for i, c in enumerate(data.classes))
        raise DataError(f"{e} (Classes: {legend}.)") from e
    batch_size = experiment.training.batch_size
    smallest = min(len(inner.train) for fold in splits.outer for inner in fold.inner)
    if isinstance(batch_size, int) and batch_size > smallest:  # not a search space: every fit would fail
        raise InvalidParamsError(
            f"training.batch_size={batch_size} is larger than the smallest training set of "
            f"the splits ({smallest} examples). Use a smaller batch size, more data, or fewer "
            "folds."
        )
    if has_final_stage(cv):
        splits.final = final_fold(data.labels, cv, seed=experiment.seed, groups=groups)
    if groups is not None:
        problems = stratification_problems(splits, data.labels, data.classes)
        if problems:
            warnings.warn(
                f"keeping each group on one side made {len(problems)} test or dev set(s) poorly stratified: "
                + "; ".join(problems[:5])
                + ("; ..." if len(problems) > 5 else "")
                + ". Their scores are noisier; fewer folds, or more groups per class, help.",
                stacklevel=2,
            )
    return splits  # both makers run the leakage check, which cannot be switched off


def summarize(fold_metrics: pd.DataFrame, splits: Splits) -> dict[str, dict[str, float]]:
    """Per metric: mean, std, the Nadeau-Bengio corrected 95% interval and the plain t-interval, both
    truncated to the metric's range (see :data:`reproai.evaluation._stats.BOUNDS_NOTE`)."""
    ratio = float(np.mean([len(f.test) / len(f.train) for f in splits.outer]))
    out = {}
    for name in [c for c in fold_metrics.columns if c not in ("repeat", "outer_fold")]:
        values = fold_metrics[name].tolist()
        bounds = metric_bounds(name)
        corrected = corrected_t_interval(values, test_train_ratio=ratio, bounds=bounds)
        plain = t_interval(values, bounds=bounds)
        out[name] = {**corrected, "t_ci_low": plain["ci_low"], "t_ci_high": plain["ci_high"]}
    return out


def _log_provenance(run: Run, loaded: LoadedConfig, data: ImageSet, splits: Splits) -> None:
    exp = loaded.experiment
    name = loaded.path.name if loaded.path else "config.py"
    run.log_text(loaded.source, f"config/{name}")
    run.log_dict(
        {"file": str(loaded.path) if loaded.path else None, "overrides": list(loaded.overrides)},
        "config/overrides.json",
    )
    run.log_dict(to_jsonable(exp), "config/resolved.json")
    run.log_dict(splits.to_dict(), "splits.json")
    run.log_table(pd.DataFrame(split_summary(splits, data.labels, data.classes)), "splits/summary.json")
    env = environment(loaded.path, exp)
    diff = env["git"].pop("diff", "")
    run.log_dict(env, "environment.json")
    if diff:
        run.log_text(diff, "git.diff")
    run.log_params(flatten_config(exp))
    commit = env["git"].get("commit") or ""
    run.set_tags(
        {
            Tag.CONFIG_FILE: name,
            Tag.SEED: exp.seed,
            Tag.N_EXAMPLES: len(data),
            **({Tag.N_GROUPS: len(set(data.groups.tolist()))} if data.groups is not None else {}),
            Tag.CLASSES: json.dumps(data.classes),
            Tag.GIT_COMMIT: commit,
            "mlflow.source.git.commit": commit,
            Tag.SEARCH: str(has_search_space(exp)).lower(),
        }
    )


def _close_dead_runs(tracker: Tracker, study_id: str) -> int:
    """End as FAILED the runs of this study that a dead process left RUNNING (MLflow never does)."""
    closed = 0
    for r in tracker.find_runs({Tag.STUDY_ID: study_id}, status="RUNNING"):
        if r.tags.get(Tag.LEVEL) not in (Level.TRIAL, Level.FIT, Level.PHASE):
            continue  # study and outer-fold runs are shared by workers and continued on resume
        wid = r.tags.get(Tag.WORKER)
        if wid and worker_alive(wid) is False:
            tracker.set_status(r.id, "FAILED")
            closed += 1
    return closed


def _work(ctx: StudyContext, splits: Splits, folds: list[OuterFold] | None = None) -> None:
    """Take part in every outer fold (or in ``folds``) until all are complete (other workers may
    complete some)."""
    from tqdm.auto import tqdm

    pending = list(splits.outer if folds is None else folds)
    desc = "final model" if folds is not None else "outer folds"
    with tqdm(total=len(pending), desc=desc, unit="fold", disable=not ctx.progress or len(pending) < 2) as bar:
        while pending:
            left = []
            for fold in pending:
                if run_outer_fold(ctx, fold):
                    bar.update()
                else:
                    left.append(fold)
            pending = left
            if pending:
                _close_dead_runs(ctx.tracker, ctx.study_run.id)  # a worker that died mid-refit, say
                time.sleep(1.0)  # other workers finish the last trials or a refit
                stopping.check()


def _collect(tracker: Tracker, study_id: str, splits: Splits) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Per-fold test metrics (as the fold runs logged them), the pooled test predictions, and the
    chosen parameters, from the study's finished outer-fold runs."""
    records: dict[tuple[int, int], RunRecord] = {}
    for r in tracker.find_runs({Tag.LEVEL: Level.OUTER_FOLD, Tag.STUDY_ID: study_id}):
        if r.tags.get(Tag.STATE) == "complete":
            records[(int(r.tags[Tag.REPEAT]), int(r.tags[Tag.OUTER_FOLD]))] = r
    rows, tables, params = [], [], []
    for fold in splits.outer:
        outcome = fold_outcome(tracker, records[(fold.repeat, fold.fold)])
        rows.append({"repeat": fold.repeat, "outer_fold": fold.fold, **outcome.metrics})
        tables.append(outcome.table.assign(repeat=fold.repeat, outer_fold=fold.fold))
        params.append({"repeat": fold.repeat, "outer_fold": fold.fold, **outcome.params})
    return pd.DataFrame(rows), pd.concat(tables, ignore_index=True), pd.DataFrame(params)


def _estimate(ctx: StudyContext, splits: Splits) -> dict[str, float]:
    """The nested estimate of the search metric over the finished outer folds (mean, corrected interval)."""
    fold_metrics, _, _ = _collect(ctx.tracker, ctx.study_run.id, splits)
    s = summarize(fold_metrics, splits).get(ctx.metric, {})
    return {k: float(s[k]) for k in ("mean", "ci_low", "ci_high", "n") if k in s}


def _headline(ctx: StudyContext, splits: Splits) -> dict[str, Any]:
    """Summarise the finished outer folds on the study run, and end it FINISHED."""
    fold_metrics, predictions, params = _collect(ctx.tracker, ctx.study_run.id, splits)
    study = ctx.study_run
    # One request for the summary, the tags and the tables' list: a study marked complete has them all.
    study.log(
        metrics={
            f"test_{name}_{k}": v
            for name, s in summarize(fold_metrics, splits).items()
            for k, v in s.items()
            if k != "n" and math.isfinite(v)
        },
        tags={
            Tag.CI_METHOD: "Nadeau-Bengio corrected resampled t over outer folds (ci_*); plain "
            "Student t (t_ci_*), optimistic since folds share training data; both truncated to the metric's "
            "range (Mandelkern 2002)",
            Tag.METRIC: ctx.metric,
            Tag.DIRECTION: ctx.direction,
            Tag.STATE: "complete",
        },
        tables={
            "predictions/out_of_fold.json": predictions,
            "metrics/outer_folds.json": fold_metrics,
            "search/best_params.json": params,
        },
    )
    ctx.tracker.set_status(study.id, "FINISHED")
    return {"run_id": study.id}


def study_result(tracker: Tracker, study_id: str, splits: Splits, *, resumed: bool = False) -> StudyResult:
    """The result of a finished study, read back from its study run."""
    fold_metrics, predictions, _ = _collect(tracker, study_id, splits)
    return StudyResult(
        run_id=study_id,
        fold_metrics=fold_metrics,
        summary=summarize(fold_metrics, splits),
        predictions=predictions,
        resumed=resumed,
        final_model=tracker.get_run(study_id).tags.get(Tag.FINAL_MODEL),
        experiment_id=getattr(tracker, "experiment_id", None),
    )


def run_experiment(
    loaded: LoadedConfig,
    *,
    tracker: Tracker | None = None,
    tracking_uri: str | None = None,
    storage: str | None = None,
    fresh: bool = False,
    progress: bool = True,
    extra_tags: dict[str, str] | None = None,
    fresh_after: int | None = None,
    register_model: bool = True,
) -> StudyResult:
    """Run, or resume, or join, the nested cross-validation of ``loaded``; docs/runs.md shows the run tree.

    Re-running the same config resumes its study: finished outer folds and trials are kept, work
    left RUNNING by a dead process is marked failed and retried. Processes that run the same config
    against the same storage at the same time work on one study together: trials are shared out, and
    each outer fold's refit and the headline happen once. ``fresh=True`` starts a new study;
    ``fresh_after`` (from :func:`reproai.runtime.last_claim_number`) lets several workers start
    the same new study. ``register_model=False`` logs the final model without registering it (a rerun
    must not move ``<experiment>@final``).

    Raises:
        ConfigError: the config cannot run (a sampler, model or loss it names does not build).
        DataError: the data cannot be read, are too few for the folds, or changed since the study started.
        TrackingError, DiskFullError: the tracking store or the disk failed; finished work is kept.
        SearchFailedError: no trial of an outer fold completed (the reasons are in the message).
    """
    exp = loaded.experiment
    if has_search_space(exp):
        make_sampler(exp.search, exp, 0)  # configuration errors of the search surface before any work
    optuna_storage = open_storage(storage)
    data, info = prepare_data(exp, progress=progress, source_name=str(loaded.path) if loaded.path else None)
    splits = prepare_splits(exp, data)
    tracker = tracker or MlflowTracker(exp.name, tracking_uri)
    key = names.study_key(exp.name, loaded.hash)
    if fresh_after is not None:
        after = fresh_after
    else:
        after = last_claim_number(optuna_storage, key) if fresh or extra_tags else -1

    def create_study_run() -> dict[str, Any]:
        prefix = names.new_prefix(exp.name, loaded.hash)
        run = tracker.open_run(
            exp.name,
            tags={
                Tag.LEVEL: Level.STUDY,
                Tag.CONFIG_HASH: loaded.hash,
                Tag.DATA_FINGERPRINT: data.fingerprint,
                **(extra_tags or {}),
            },
        )
        run.set_tags(
            {
                Tag.STUDY_ID: run.id,
                Tag.OPTUNA_PREFIX: prefix,
                Tag.OPTUNA_STORAGE: storage_label(storage),
                Tag.WORKER: worker_id(),
            }
        )
        _log_provenance(run, loaded, data, splits)
        return {"run_id": run.id, "prefix": prefix}

    value, created = once(optuna_storage, key, create_study_run, after=after)
    study_id, prefix = value["run_id"], value["prefix"]
    if not created:
        before = tracker.get_run(study_id).tags.get(Tag.DATA_FINGERPRINT)
        if before and before != data.fingerprint:
            raise DataError(
                f"The data changed since study {study_id} started (fingerprint {before} -> "
                f"{data.fingerprint}): resuming would mix results on different data. Restore the "
                "data, or start a new study with --fresh."
            )
    if claimed(optuna_storage, names.headline_claim(prefix)) is None:
        # The study run's status is left alone here (another worker may be writing the headline this
        # moment); the headline marks it FINISHED.
        _close_dead_runs(tracker, study_id)
        ctx = StudyContext(
            experiment=exp,
            data=data,
            info=info,
            splits=splits,
            tracker=tracker,
            storage=optuna_storage,
            study_run=tracker.run(study_id),
            prefix=prefix,
            progress=progress,
            register_model=register_model,
        )
        try:
            _work(ctx, splits)
            if splits.final is not None:
                ctx.estimate = _estimate(ctx, splits)
                _work(ctx, splits, [splits.final])
            once(optuna_storage, names.headline_claim(prefix), lambda: _headline(ctx, splits))
        except BaseException as e:
            tracker.set_status(study_id, end_status(e))
            raise
    return study_result(tracker, study_id, splits, resumed=not created)
