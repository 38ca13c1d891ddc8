"""Rebuild each outer fold's Optuna search from its MLflow trial runs, so that analysis needs no access
to the Optuna storage (which may be a database on another cluster)."""

from __future__ import annotations

import json
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution, json_to_distribution
from optuna.trial import TrialState

from reproai.analysis._load import StudyData
from reproai.evaluation._metrics import as_direction
from reproai.runtime._trials import quiet_optuna
from reproai.tracking._tags import Level, Tag

__all__ = ["rebuild_searches"]

_STATES = {"complete": TrialState.COMPLETE, "pruned": TrialState.PRUNED}


def _value(text: str, distribution: BaseDistribution) -> Any:
    """A parameter value as logged (a string) converted back to what the distribution holds."""
    if isinstance(distribution, CategoricalDistribution):
        return next((c for c in distribution.choices if str(c) == text), text)
    if isinstance(distribution, IntDistribution):
        return int(text)
    return float(text)


def rebuild_searches(data: StudyData) -> dict[tuple[int, int], optuna.Study]:
    """An in-memory Optuna study per outer fold ``(repeat, fold)`` holding its finished trials.

    Completed trials carry their objective (the mean dev metric over inner folds); pruned trials
    are kept as pruned; failed ones are left out. Studies without search spaces give no entry.
    """
    direction = data.study.tags.get(Tag.DIRECTION, "maximize")
    by_fold: dict[tuple[int, int], list[Any]] = {}
    for run in data.level(Level.TRIAL):
        state = _STATES.get(run.tags.get(Tag.STATE, ""))
        spec = run.tags.get(Tag.DISTRIBUTIONS)
        if state is None or spec is None:
            continue
        distributions = {k: json_to_distribution(v) for k, v in json.loads(spec).items()}
        value = run.metrics.get(f"dev_{data.metric}")
        if state == TrialState.COMPLETE and value is None:
            continue
        params = {k: _value(run.params[k], d) for k, d in distributions.items() if k in run.params}
        key = (int(run.tags[Tag.REPEAT]), int(run.tags[Tag.OUTER_FOLD]))
        trial = optuna.trial.create_trial(
            params=params,
            distributions=distributions,
            state=state,
            value=value if state == TrialState.COMPLETE else None,
            user_attrs={"trial": int(run.tags.get(Tag.TRIAL, -1))},
        )
        by_fold.setdefault(key, []).append(trial)
    studies = {}
    with quiet_optuna():
        for key, trials in sorted(by_fold.items()):
            study = optuna.create_study(direction=as_direction(direction), study_name=f"outer-{key[0]}-{key[1]}")
            study.add_trials(sorted(trials, key=lambda t: t.user_attrs["trial"]))
            studies[key] = study
    return studies
