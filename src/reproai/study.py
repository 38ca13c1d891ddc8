"""Run an experiment: nested cross-validation with the search inside each outer fold, tracked,
resumable. This is the orchestration layer; the pieces it calls know nothing of each other.
"""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from reproai.analysis.stats import corrected_t_interval, t_interval
from reproai.config.loader import LoadedConfig
from reproai.config.schema import Experiment
from reproai.config.space import Space
from reproai.config.tree import child_items, has_search_space, to_jsonable
from reproai.cv import Splits, make_splits
from reproai.data.datasets import ImageSet, list_source, load_images
from reproai.errors import DataError
from reproai.models import BackboneInfo, backbone_info
from reproai.outer_fold import StudyContext, run_outer_fold
from reproai.provenance import environment
from reproai.search import make_sampler, open_storage
from reproai.tracking import TAG_PREFIX as T
from reproai.tracking import MlflowTracker, Run, RunRecord, Tracker
from reproai.workers import worker_alive, worker_id

__all__ = ["StudyResult", "run_experiment", "prepare_data", "prepare_splits", "flatten_config", "summarize"]


@dataclass
class StudyResult:
    """The outcome of a study: per-fold test metrics, their summary, and the study run's id."""

    run_id: str
    fold_metrics: pd.DataFrame
    summary: dict[str, dict[str, float]]
    predictions: pd.DataFrame = field(repr=False)
    resumed: bool = False


def flatten_config(tree: Any, path: str = "") -> dict[str, Any]:
    """Leaf values of a config tree by dotted path (search spaces shown as their repr)."""
    items = child_items(tree)
    if not items or isinstance(tree, Space):
        return {path: repr(tree) if isinstance(tree, Space) else tree}
    out: dict[str, Any] = {}
    for key, child in items:
        out.update(flatten_config(child, f"{path}.{key}" if path else key))
    return out


def prepare_data(experiment: Experiment, *, progress: bool = True) -> tuple[ImageSet, BackboneInfo]:
    """List, limit and decode the experiment's data at the backbone's input size."""
    info = backbone_info(experiment.model)
    source = list_source(experiment.data, seed=experiment.seed)
    size = info.image_size or source.native_size or 32
    data = load_images(source, size, on_error=experiment.data.on_error, progress=progress,
                       cache_dir=experiment.data.cache_dir)
    return data, BackboneInfo(image_size=size, mean=info.mean, std=info.std)


def prepare_splits(experiment: Experiment, data: ImageSet) -> Splits:
    """The study's splits: computed from the labels, or the outer split read from ``cv.splits_file``."""
    cv = experiment.cv
    if cv.splits_file:
        from reproai.cv import splits_from_file

        splits = splits_from_file(cv.splits_file, data.labels, cv, seed=experiment.seed, ids=data.ids)
    else:
        splits = make_splits(data.labels, cv, seed=experiment.seed, ids=data.ids)
    return splits  # both makers run the leakage check, which cannot be switched off


def summarize(fold_metrics: pd.DataFrame, splits: Splits) -> dict[str, dict[str, float]]:
    """Per metric: mean, std, the Nadeau-Bengio corrected 95% interval and the plain t-interval."""
    ratio = float(np.mean([len(f.test) / len(f.train) for f in splits.outer]))
    out = {}
    for name in [c for c in fold_metrics.columns if c not in ("repeat", "outer_fold")]:
        values = fold_metrics[name].tolist()
        corrected = corrected_t_interval(values, test_train_ratio=ratio)
        plain = t_interval(values)
        out[name] = {**corrected, "t_ci_low": plain["ci_low"], "t_ci_high": plain["ci_high"]}
    return out


def _log_provenance(run: Run, loaded: LoadedConfig, data: ImageSet, splits: Splits) -> None:
    exp = loaded.experiment
    name = loaded.path.name if loaded.path else "config.py"
    run.log_text(loaded.source, f"config/{name}")
    run.log_dict({"file": str(loaded.path) if loaded.path else None, "overrides": list(loaded.overrides)},
                 "config/overrides.json")
    run.log_dict(to_jsonable(exp), "config/resolved.json")
    run.log_dict(splits.to_dict(), "splits.json")
    env = environment(loaded.path)
    diff = env["git"].pop("diff", "")
    run.log_dict(env, "environment.json")
    if diff:
        run.log_text(diff, "git.diff")
    run.log_params(flatten_config(exp))
    commit = env["git"].get("commit") or ""
    run.set_tags({f"{T}config_file": name, f"{T}seed": exp.seed, f"{T}n_examples": len(data),
                  f"{T}classes": json.dumps(data.classes), f"{T}git_commit": commit,
                  "mlflow.source.git.commit": commit, f"{T}search": str(has_search_space(exp)).lower()})


def _find_study(tracker: Tracker, loaded: LoadedConfig) -> RunRecord | None:
    """The study run this config continues, if any (same experiment and config hash)."""
    runs = tracker.find_runs({f"{T}level": "study", f"{T}config_hash": loaded.hash})
    runs = [r for r in runs if f"{T}rerun_of" not in r.tags]
    return runs[0] if runs else None


def _close_dead_runs(tracker: Tracker, study_id: str) -> int:
    """End as FAILED the runs of this study that a dead process left RUNNING (MLflow never does)."""
    closed = 0
    for r in tracker.find_runs({f"{T}study_id": study_id}, status="RUNNING"):
        if r.tags.get(f"{T}level") == "study":
            continue
        wid = r.tags.get(f"{T}worker")
        if wid and worker_alive(wid) is False:
            tracker.set_status(r.id, "FAILED")
            closed += 1
    return closed


def run_experiment(loaded: LoadedConfig, *, tracker: Tracker | None = None, tracking_uri: str | None = None,
                   storage: str | None = None, fresh: bool = False, progress: bool = True,
                   extra_tags: dict[str, str] | None = None) -> StudyResult:
    """Run, or resume, the nested cross-validation of ``loaded``; see the README for the run tree.

    Re-running the same config resumes its study: finished outer folds and trials are kept, work
    left RUNNING by a dead process is marked failed and retried. ``fresh=True`` starts a new study.
    """
    from tqdm.auto import tqdm

    exp = loaded.experiment
    optuna_storage = None
    if has_search_space(exp):
        make_sampler(exp.search, exp, 0)  # configuration errors of the search surface before any work
        optuna_storage = open_storage(storage)
    data, info = prepare_data(exp, progress=progress)
    splits = prepare_splits(exp, data)
    tracker = tracker or MlflowTracker(exp.name, tracking_uri)
    previous = None if fresh or extra_tags else _find_study(tracker, loaded)
    if previous is not None:
        before = previous.tags.get(f"{T}data_fingerprint")
        if before and before != data.fingerprint:
            raise DataError(f"The data changed since study {previous.id} started (fingerprint {before} -> "
                            f"{data.fingerprint}): resuming would mix results on different data. Restore the "
                            "data, or start a new study with --fresh.")
        prefix = previous.tags[f"{T}optuna_prefix"]
        cm = tracker.resume_run(previous.id)
    else:
        prefix = f"{exp.name}/{loaded.hash}/{uuid.uuid4().hex[:8]}"
        cm = tracker.start_run(exp.name, tags={f"{T}level": "study", f"{T}config_hash": loaded.hash,
                                               f"{T}data_fingerprint": data.fingerprint, **(extra_tags or {})})
    with cm as study:
        if previous is None:
            study.set_tags({f"{T}study_id": study.id, f"{T}optuna_prefix": prefix})
            _log_provenance(study, loaded, data, splits)
        else:
            _close_dead_runs(tracker, study.id)
        study.set_tags({f"{T}worker": worker_id()})
        ctx = StudyContext(exp, data, info, splits, tracker, optuna_storage, study, prefix, progress)
        rows, tables, params = [], [], []
        for fold in tqdm(splits.outer, desc="outer folds", unit="fold", disable=not progress or len(splits.outer) < 2):
            outcome = run_outer_fold(ctx, fold)
            rows.append({"repeat": fold.repeat, "outer_fold": fold.fold, **outcome.metrics})
            tables.append(outcome.table.assign(repeat=fold.repeat, outer_fold=fold.fold))
            params.append({"repeat": fold.repeat, "outer_fold": fold.fold, **outcome.params})
        fold_metrics = pd.DataFrame(rows)
        summary = summarize(fold_metrics, splits)
        for name, s in summary.items():
            study.log_metrics({f"test_{name}_{k}": v for k, v in s.items() if k != "n" and math.isfinite(v)})
        study.set_tags({f"{T}ci_method": "Nadeau-Bengio corrected resampled t over outer folds (ci_*); plain "
                                         "Student t (t_ci_*), optimistic since folds share training data",
                        f"{T}metric": ctx.metric, f"{T}direction": ctx.direction, f"{T}state": "complete"})
        predictions = pd.concat(tables, ignore_index=True)
        study.log_table(predictions, "predictions/out_of_fold.json")
        study.log_table(fold_metrics, "metrics/outer_folds.json")
        study.log_table(pd.DataFrame(params), "search/best_params.json")
    return StudyResult(run_id=study.id, fold_metrics=fold_metrics, summary=summary, predictions=predictions,
                       resumed=previous is not None)
