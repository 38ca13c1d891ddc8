"""Run an experiment: load the data, split it, fit each outer fold, track everything.

This is the orchestration layer; the pieces it calls (data, splits, fit, tracking) know nothing
of each other.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reproai.analysis.stats import t_interval
from reproai.config.loader import LoadedConfig
from reproai.config.schema import Experiment
from reproai.config.space import Space
from reproai.config.tree import child_items, has_search_space, to_jsonable
from reproai.cv import Splits, check_splits, make_splits
from reproai.data.datasets import ImageSet, list_source, load_images
from reproai.errors import ConfigError
from reproai.metrics import metric_direction
from reproai.models import BackboneInfo, backbone_info
from reproai.provenance import environment
from reproai.seeding import derive_seed
from reproai.tracking import TAG_PREFIX, MlflowTracker, Run, Tracker
from reproai.training import fit

__all__ = ["StudyResult", "run_experiment", "prepare_data", "flatten_config"]


@dataclass
class StudyResult:
    """The outcome of a study: per-fold test metrics, their summary, and the study run's id."""

    run_id: str
    fold_metrics: pd.DataFrame
    summary: dict[str, dict[str, float]]
    predictions: pd.DataFrame = field(repr=False)


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
    data = load_images(source, size, on_error=experiment.data.on_error, progress=progress)
    return data, BackboneInfo(image_size=size, mean=info.mean, std=info.std)


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
    run.log_params({k: v for k, v in flatten_config(exp).items()})
    run.set_tags({f"{TAG_PREFIX}config_file": name, f"{TAG_PREFIX}config_hash": loaded.hash,
                  f"{TAG_PREFIX}data_fingerprint": data.fingerprint, f"{TAG_PREFIX}seed": exp.seed,
                  f"{TAG_PREFIX}n_examples": len(data), f"{TAG_PREFIX}classes": json.dumps(data.classes),
                  f"{TAG_PREFIX}git_commit": env["git"].get("commit") or "", "mlflow.source.git.commit":
                  env["git"].get("commit") or ""})


def run_experiment(loaded: LoadedConfig, *, tracker: Tracker | None = None, tracking_uri: str | None = None,
                   progress: bool = True) -> StudyResult:
    """Run the experiment of ``loaded``: one tracked fit per outer fold, and a headline across folds."""
    from tqdm.auto import tqdm

    exp = loaded.experiment
    if has_search_space(exp):
        raise ConfigError(f"{loaded.path}: the config holds search spaces, but this version of reproai runs "
                          "only fixed configs; fix each one with --set PATH=VALUE (see `reproai space`).")
    data, info = prepare_data(exp, progress=progress)
    splits = make_splits(data.labels, exp.cv, seed=exp.seed, ids=data.ids)
    check_splits(splits)
    tracker = tracker or MlflowTracker(exp.name, tracking_uri)
    metric = exp.search.metric
    study_tags = {f"{TAG_PREFIX}level": "study"}
    rows, tables = [], []
    with tracker.start_run(exp.name, tags=study_tags) as study:
        study.set_tags({f"{TAG_PREFIX}study_id": study.id})
        _log_provenance(study, loaded, data, splits)
        for fold in tqdm(splits.outer, desc="outer folds", unit="fold", disable=not progress or len(splits.outer) < 2):
            base = {f"{TAG_PREFIX}study_id": study.id, f"{TAG_PREFIX}outer_fold": fold.fold,
                    f"{TAG_PREFIX}repeat": fold.repeat}
            with tracker.start_run(f"outer-{fold.key}", tags={**base, f"{TAG_PREFIX}level": "outer_fold"},
                                   parent=study) as fold_run:
                inner = fold.inner[0]
                fit_tags = {**base, f"{TAG_PREFIX}inner_fold": 0}
                with tracker.start_run("fit", tags={**fit_tags, f"{TAG_PREFIX}level": "fit"}, parent=fold_run) as fit_run:
                    fit_seed = derive_seed(exp.seed, "fit", fold.repeat, fold.fold)
                    result = fit(exp.model, exp.training, data, info, train=inner.train, dev=inner.dev,
                                 test=fold.test, metric=metric, seed=fit_seed, tracker=tracker, parent=fit_run,
                                 tags=fit_tags, progress=progress)
                    dev_table = result.dev.table(data, result.threshold)
                    test_table = result.test.table(data, result.threshold)
                    fit_run.log_params({"seed": fit_seed, "n_train": len(inner.train), "n_dev": len(inner.dev),
                                        "n_test": len(fold.test)})
                    fit_run.log_metrics({**{f"dev_{k}": v for k, v in result.dev_metrics.items()},
                                         **{f"test_{k}": v for k, v in result.test_metrics.items()},
                                         **({"threshold": result.threshold} if result.threshold is not None else {})})
                    fit_run.log_table(dev_table, "predictions/dev.json")
                    fit_run.log_table(test_table, "predictions/test.json")
                fold_run.log_metrics({f"test_{k}": v for k, v in result.test_metrics.items()})
                fold_run.log_table(test_table, "predictions/test.json")
                if result.threshold is not None:
                    fold_run.log_metrics({"threshold": result.threshold})
            rows.append({"repeat": fold.repeat, "outer_fold": fold.fold, **result.test_metrics})
            tables.append(test_table.assign(repeat=fold.repeat, outer_fold=fold.fold))
        fold_metrics = pd.DataFrame(rows)
        summary = {}
        for name in [c for c in fold_metrics.columns if c not in ("repeat", "outer_fold")]:
            s = t_interval(fold_metrics[name].tolist())
            summary[name] = s
            study.log_metrics({f"test_{name}_{k}": v for k, v in s.items() if k != "n" and math.isfinite(v)})
        study.set_tags({f"{TAG_PREFIX}ci_method": "Student t over outer folds (optimistic: folds share training data)",
                        f"{TAG_PREFIX}metric": metric, f"{TAG_PREFIX}direction": exp.search.direction or metric_direction(metric)})
        predictions = pd.concat(tables, ignore_index=True)
        study.log_table(predictions, "predictions/out_of_fold.json")
        study.log_table(fold_metrics, "metrics/outer_folds.json")
    return StudyResult(run_id=study.id, fold_metrics=fold_metrics, summary=summary, predictions=predictions)
