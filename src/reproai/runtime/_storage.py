"""Optuna: storages by URL, samplers and pruners by name, and the care of trials left by dead workers."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import optuna
from optuna.trial import TrialState

from reproai.config._registry import create
from reproai.config._schema import Experiment, Search
from reproai.config._space import Categorical
from reproai.config._tree import iter_parameters
from reproai.errors import ConfigError
from reproai.runtime._retry import PatientStorage
from reproai.runtime._trials import cached_storage, trial_id

__all__ = [
    "open_storage",
    "storage_label",
    "make_sampler",
    "make_pruner",
    "grid_space",
    "tpe_sampler",
    "grid_sampler",
    "hyperband_pruner",
    "fail_dead_trials",
    "finished_trials",
    "is_done",
    "DEFAULT_STORAGE",
]

DEFAULT_STORAGE = "sqlite:///optuna.db"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def open_storage(url: str | None = None) -> optuna.storages.BaseStorage:
    """An Optuna storage from a URL: ``sqlite:///f.db``, ``postgresql://...``, or a journal file
    (``journal:PATH``, or a path ending in ``.log`` / ``.journal``). A database server's storage
    waits out a restart (see :mod:`reproai.runtime._retry`)."""
    url = url or DEFAULT_STORAGE
    try:
        if url.startswith("journal:") or url.endswith((".log", ".journal")):
            from optuna.storages.journal import JournalFileBackend

            path = url[len("journal:") :] if url.startswith("journal:") else url
            return optuna.storages.JournalStorage(JournalFileBackend(path))
        engine: dict[str, Any] = {}
        if url.startswith("sqlite"):
            engine = {"connect_args": {"timeout": 60}}  # wait for a lock rather than fail at once
        elif url.startswith(("postgresql", "mysql")):
            engine = {"pool_pre_ping": True}  # replace connections a server restart broke
        # No Optuna heartbeat: reproai records its own on every storage (see reproai.runtime._claims).
        storage = _rdb_storage(url, engine)
        if url.startswith(("postgresql", "mysql")):
            from sqlalchemy.engine import make_url

            # Wrapped after the first connection succeeded: a wrong URL fails at once, a restart is waited out.
            server = make_url(url)
            name = "PostgreSQL" if url.startswith("postgresql") else "MySQL"
            return PatientStorage(
                cached_storage(storage),
                f"the Optuna storage ({name} at {server.host}:{server.port or ''}/{server.database})",
            )
        return storage
    except Exception as e:  # SQLAlchemy and driver errors have many types
        raise ConfigError(
            f"Cannot open the Optuna storage {url!r}: {type(e).__name__}: {e}. Check --storage "
            "(e.g. sqlite:///optuna.db, postgresql://user@host/db, journal:/shared/study.log) "
            "and that the database server is up."
        ) from e


def storage_label(url: str | None) -> str:
    """``url`` (default :data:`DEFAULT_STORAGE`) as it may be shown and logged: a password is hidden."""
    url = url or DEFAULT_STORAGE
    if url.startswith("journal:") or url.endswith((".log", ".journal")):
        return url
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a database URL: open_storage reports it
        return url


def _rdb_storage(url: str, engine: dict[str, Any], attempts: int = 5) -> optuna.storages.RDBStorage:
    """An RDB storage; workers that start together on an empty database race to create Optuna's
    tables, and the losers see the winner's (an integrity error): they try again."""
    import sqlalchemy.exc

    for attempt in range(attempts):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


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


def is_done(trial: optuna.trial.FrozenTrial) -> bool:
    """Whether a trial counts towards ``n_trials``: it completed, was pruned, or failed on its own
    parameters (not one stopped, died, or asked in surplus: those are run again)."""
    return trial.state in FINISHED or (trial.state == TrialState.FAIL and bool(trial.user_attrs.get("error")))


def finished_trials(study: optuna.Study) -> int:
    """The number of trials that count towards ``n_trials`` (see :func:`is_done`)."""
    return sum(is_done(t) for t in study.get_trials(deepcopy=False))


def fail_dead_trials(study: optuna.Study, storage: optuna.storages.BaseStorage) -> dict[int, str]:
    """Mark FAILED the RUNNING trials whose worker is dead, and enqueue each again with its parameters.

    A worker is dead when its process is gone (on this host) or its heartbeat stopped (any host, any
    storage: Optuna's own heartbeat covers RDB storages only, and only trials run by ``optimize``).
    Returns the failed trials' numbers and their workers.
    """
    from reproai.runtime._claims import is_dead

    failed = {}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not is_dead(trial):
            continue
        wid = trial.user_attrs.get("worker", "unknown")
        try:
            storage.set_trial_user_attr(trial_id(trial), "failed_reason", f"worker {wid} died")
            storage.set_trial_state_values(trial_id(trial), state=TrialState.FAIL)
        except RuntimeError:  # it finished meanwhile
            continue
        study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
        failed[trial.number] = wid
    return failed
