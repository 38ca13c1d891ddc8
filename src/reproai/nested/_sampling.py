"""The search's sampler and pruner, by name (Optuna's, or reproai's wrappers of them registered in the
component registry): TPE with a share of random start-up trials, a grid over categorical spaces, Hyperband
over a trial's epochs and inner folds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import optuna
from optuna.trial import TrialState

from reproai.config._registry import create
from reproai.config._schema import Experiment, Search
from reproai.config._space import Categorical
from reproai.config._tree import iter_parameters
from reproai.errors import ConfigError

__all__ = ["make_sampler", "make_pruner", "grid_space", "tpe_sampler", "grid_sampler", "hyperband_pruner"]


class _GridSampler(optuna.samplers.GridSampler):
    """Optuna's grid sampler, without its ``study.stop()`` once the grid is covered: that works only
    inside ``study.optimize``, and reproai's ask/tell loop counts its trials itself."""

    def after_trial(
        self,
        study: optuna.Study,
        trial: optuna.trial.FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        pass


def grid_space(experiment: Experiment) -> dict[str, list[Any]]:
    """The grid of a config whose search spaces are all unconditional ``hp.categorical``.

    Raises:
        ConfigError: a search space is not categorical, or is conditional.
    """
    grid = {}
    for p in iter_parameters(experiment):
        if not isinstance(p.space, Categorical) or p.condition:
            raise ConfigError(
                f"search.sampler='grid' needs every search space to be an unconditional "
                f"hp.categorical, but `{p.name}` is {p.space!r}."
            )
        grid[p.name] = list(p.space.choices)
    return grid


def tpe_sampler(*, seed: int, n_trials: int, **kwargs: Any) -> optuna.samplers.TPESampler:
    """Optuna's TPE sampler (Bergstra et al., 2011), with a third of the trials (2 to 10) sampled at
    random before it models the search; ``kwargs`` go to ``TPESampler``."""
    kwargs.setdefault("n_startup_trials", min(10, max(2, n_trials // 3)))
    return optuna.samplers.TPESampler(seed=seed, **kwargs)


def grid_sampler(*, seed: int, search_space: dict[str, list[Any]]) -> optuna.samplers.GridSampler:
    """Every combination of the config's categorical spaces, in a seeded order."""
    return _GridSampler(search_space, seed=seed)


def hyperband_pruner(*, n_inner_folds: int, min_resource: int = 1, **kwargs: Any) -> optuna.pruners.HyperbandPruner:
    """Optuna's Hyperband pruner (Li et al., 2018) over a trial's steps: its epochs, then its inner folds."""
    return optuna.pruners.HyperbandPruner(min_resource=min_resource, max_resource=10_000 + n_inner_folds, **kwargs)


def make_sampler(search: Search, experiment: Experiment, seed: int) -> optuna.samplers.BaseSampler:
    """The sampler ``search.sampler`` names, given ``seed`` (and the grid, the number of trials) when it
    takes them."""
    fill = {
        "seed": lambda: seed,
        "n_trials": lambda: search.n_trials,
        "search_space": lambda: grid_space(experiment),
    }
    return create("sampler", search.sampler, fill=fill)


def make_pruner(search: Search, inner_folds: int) -> optuna.pruners.BasePruner:
    """The pruner ``search.pruner`` names.

    A trial reports its dev metric after each epoch of its first inner fold, and its running mean
    over inner folds after each inner fold, so that a hopeless trial stops during its first fit.
    The median pruner starts once two trials have finished, and never on a first epoch (too noisy).
    """
    return create("pruner", search.pruner, fill={"n_inner_folds": lambda: inner_folds})
