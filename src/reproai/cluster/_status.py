"""``reproai status``: the progress of a (running) study, read from its Optuna storage."""

from __future__ import annotations

from dataclasses import dataclass

import optuna
import pandas as pd
from optuna.trial import TrialState

from reproai.errors import ReproaiError
from reproai.runtime._claims import is_dead
from reproai.runtime._names import claims_study, fold_claim, fold_key_of, fold_search, headline_claim
from reproai.runtime._storage import open_storage, storage_label
from reproai.tracking import find_study
from reproai.tracking._tags import Tag

__all__ = ["StudyStatus", "study_status"]

_STATES = {
    TrialState.COMPLETE: "complete",
    TrialState.PRUNED: "pruned",
    TrialState.FAIL: "failed",
    TrialState.RUNNING: "running",
    TrialState.WAITING: "waiting",
}


@dataclass
class StudyStatus:
    """Per outer fold (and the final model's stage, as the fold ``final``): trials by state and whether the
    refit is done; per worker: trials by state."""

    study_id: str
    state: str
    folds: pd.DataFrame
    workers: pd.DataFrame
    n_trials: int

    @property
    def outer(self) -> pd.DataFrame:
        """The outer folds' rows (not the final stage's)."""
        return self.folds[self.folds["outer_fold"] != "final"] if not self.folds.empty else self.folds

    @property
    def folds_done(self) -> int:
        return int((self.outer["refit"] == "done").sum()) if not self.folds.empty else 0


def _claim_state(storage: optuna.storages.BaseStorage, names: set[str], name: str) -> str:
    if name not in names:
        return "not started"
    trials = optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
    if any(t.state == TrialState.COMPLETE for t in trials):
        return "done"
    running = [t for t in trials if t.state == TrialState.RUNNING and not is_dead(t)]
    return f"running ({running[0].user_attrs.get('worker', '?')})" if running else "not started"


def study_status(reference: str, *, tracking_uri: str | None = None, storage: str | None = None) -> StudyStatus:
    """The progress of the study ``reference`` (experiment name or run id) from its Optuna storage.

    Raises :class:`~reproai.errors.ReproaiError` when ``storage`` is not the one the study ran with.
    """
    tracker, run = find_study(reference, tracking_uri, finished=False)
    where = f"tracked at {tracker.tracking_uri}"
    prefix = run.tags.get(Tag.OPTUNA_PREFIX)
    if not prefix:
        raise ReproaiError(
            f"Study run {run.id} has no {Tag.OPTUNA_PREFIX} tag; it was not made by this version of reproai."
        )
    recorded = run.tags.get(Tag.OPTUNA_STORAGE)
    given = storage_label(storage)
    store = open_storage(storage)
    names = {s.study_name for s in optuna.get_all_study_summaries(store, include_best_trial=False)}
    found = any(n.startswith((f"{prefix}/", claims_study(f"{prefix}/"))) for n in names)
    # A study claims its first outer fold in its storage within moments of starting; one that ran
    # elsewhere would otherwise show as "0 of 0 outer folds done".
    if not found and (run.status != "RUNNING" or (recorded and recorded != given)):
        ran_with = f"it ran with {recorded}" if recorded else "pass the --storage it ran with"
        raise ReproaiError(
            f"The Optuna storage {given} holds nothing of study run {run.id} ({where}; its Optuna "
            f"studies are named {prefix}/...): {ran_with}. Give --storage (and --tracking-uri) as for the run."
        )
    folds = sorted({key for n in names if (key := fold_key_of(n, prefix)) is not None})
    n_trials = int(float(run.params.get("search.n_trials", 0) or 0))
    rows, by_worker = [], []
    for key in folds:
        counts = dict.fromkeys(_STATES.values(), 0)
        if fold_search(prefix, key) in names:
            for t in optuna.load_study(study_name=fold_search(prefix, key), storage=store).get_trials(deepcopy=False):
                state = _STATES[t.state]
                if t.state == TrialState.FAIL and t.user_attrs.get("failed_reason", "").startswith("surplus"):
                    continue  # asked at the same moment as another worker's last trial, and never run
                counts[state] += 1
                by_worker.append({"worker": t.user_attrs.get("worker", "?"), "state": state})
        refit = _claim_state(store, names, claims_study(fold_claim(prefix, key, "refit")))
        rows.append({"outer_fold": key, **counts, "refit": refit})
    workers = pd.DataFrame(by_worker)
    if not workers.empty:
        workers = workers.value_counts().unstack(fill_value=0).reset_index()
    headline = _claim_state(store, names, claims_study(headline_claim(prefix)))
    state = "finished" if headline == "done" else run.status.lower()
    return StudyStatus(run.id, state, pd.DataFrame(rows), workers, n_trials)
