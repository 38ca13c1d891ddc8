"""Optuna, where its public API stops: a trial's storage id, the storage wrapper Optuna itself puts
around RDB storages, and quiet studies.

Everything reproai does with Optuna's private names happens here and nowhere else; tests/test_trials.py
checks each against Optuna's public API, so that a release that changes them fails loudly.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import optuna
from optuna.trial import FrozenTrial, Trial

__all__ = ["quiet_optuna", "trial_id", "cached_storage"]


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """Optuna logs warnings only while the block runs (no "A new study created" line per study)."""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(verbosity)


def trial_id(trial: Trial | FrozenTrial) -> int:
    """A trial's id in its storage (what ``BaseStorage.set_trial_user_attr`` and friends take).

    The public way, ``storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)``, costs
    a query (and the study's id another); a heartbeat or a claim would pay them every few seconds.
    """
    return int(trial._trial_id)


def cached_storage(storage: optuna.storages.RDBStorage) -> optuna.storages.BaseStorage:
    """``storage`` wrapped as ``optuna.create_study(storage=url)`` wraps it (``_CachedStorage``: finished
    trials are read once), or as it is where a release no longer has that wrapper."""
    cached = getattr(optuna.storages, "_CachedStorage", None)
    return cached(storage) if cached is not None else storage
