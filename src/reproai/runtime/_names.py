"""The names of a study's Optuna studies and claims in the storage, built and parsed in one place.

A study of config ``hash`` under experiment ``name`` is claimed as ``<name>/<hash>/study``; its run picks a
prefix ``<name>/<hash>/<8 hex>``, under which each outer fold's search is the Optuna study
``<prefix>/outer-<key>`` and its work is claimed as ``<prefix>/outer-<key>/run`` and ``.../refit``, and the
headline as ``<prefix>/headline``. Claims live in Optuna studies of their own, named ``reproai-claims/<claim>``.
"""

from __future__ import annotations

import uuid

__all__ = [
    "CLAIMS_PREFIX",
    "study_key",
    "new_prefix",
    "fold_search",
    "fold_claim",
    "headline_claim",
    "claims_study",
    "is_claims_study",
    "fold_key_of",
    "search_fold_key",
]

CLAIMS_PREFIX = "reproai-claims"
_OUTER = "outer-"


def study_key(name: str, config_hash: str) -> str:
    """The claim under which workers agree on the study of a config (its experiment name and hash)."""
    return f"{name}/{config_hash}/study"


def new_prefix(name: str, config_hash: str) -> str:
    """A new study's prefix for its Optuna studies and claims: unique per study run."""
    return f"{name}/{config_hash}/{uuid.uuid4().hex[:8]}"


def fold_search(prefix: str, fold_key: str) -> str:
    """The Optuna study of outer fold ``fold_key``'s search (``fold_key``: ``"0"``, ``"1-2"``, ``"final"``)."""
    return f"{prefix}/{_OUTER}{fold_key}"


def fold_claim(prefix: str, fold_key: str, work: str) -> str:
    """The claim of one piece of an outer fold's work: ``"run"`` (its MLflow run) or ``"refit"``."""
    return f"{fold_search(prefix, fold_key)}/{work}"


def headline_claim(prefix: str) -> str:
    """The claim of writing the study's headline (done once, by one worker)."""
    return f"{prefix}/headline"


def claims_study(claim: str) -> str:
    """The Optuna study that holds the claims of ``claim``."""
    return f"{CLAIMS_PREFIX}/{claim}"


def is_claims_study(study_name: str) -> bool:
    """Whether an Optuna study holds claims, not a search."""
    return study_name.startswith(f"{CLAIMS_PREFIX}/")


def fold_key_of(study_name: str, prefix: str) -> str | None:
    """The outer fold that an Optuna study of the study ``prefix`` belongs to (its search, or a claim of
    its run or refit), or None for any other study."""
    for start in (f"{prefix}/{_OUTER}", claims_study(f"{prefix}/{_OUTER}")):
        if study_name.startswith(start):
            return study_name[len(start) :].split("/", 1)[0]
    return None


def search_fold_key(study_name: str) -> str | None:
    """The outer fold whose search the Optuna study ``study_name`` is (``"0"``, ``"r1-2"``, ``"final"``), or
    None for a claims study or any other."""
    if is_claims_study(study_name):
        return None
    last = study_name.rpartition("/")[2]
    return last[len(_OUTER) :] if last.startswith(_OUTER) else None
