"""Running among workers: Optuna storages by URL, exactly-once claims and heartbeats, worker ids,
waiting out a storage or tracking server that went away, and stopping on SIGTERM and Ctrl-C."""

from reproai.runtime._claims import claim, claimed, heartbeat, last_claim_number, once, release
from reproai.runtime._stopping import Terminated
from reproai.runtime._storage import DEFAULT_STORAGE, open_storage, storage_label
from reproai.runtime._workers import worker_alive, worker_id

__all__ = [
    "open_storage",
    "storage_label",
    "DEFAULT_STORAGE",
    "claim",
    "claimed",
    "once",
    "release",
    "heartbeat",
    "last_claim_number",
    "worker_id",
    "worker_alive",
    "Terminated",
]
