"""Running among workers: Optuna storages by URL, exactly-once claims and heartbeats, worker ids,
waiting out a storage or tracking server that went away, and stopping on SIGTERM and Ctrl-C."""

from reproai.runtime._claims import claim, claimed, heartbeat, last_claim_number, once, release
from reproai.runtime._names import fold_key_of, fold_search, is_claims_study, search_fold_key, study_key
from reproai.runtime._stopping import Terminated
from reproai.runtime._storage import DEFAULT_STORAGE, open_storage, storage_label
from reproai.runtime._workers import worker_alive, worker_id

__all__ = [
    "DEFAULT_STORAGE",
    "Terminated",
    "claim",
    "claimed",
    "fold_key_of",
    "fold_search",
    "heartbeat",
    "is_claims_study",
    "last_claim_number",
    "once",
    "open_storage",
    "release",
    "search_fold_key",
    "storage_label",
    "study_key",
    "worker_alive",
    "worker_id",
]
