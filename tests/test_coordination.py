"""Claims: exactly one worker wins a piece of work; a dead worker's claim is released to the next one."""

import socket
import subprocess
import sys

import pytest

from reproai.runtime._claims import claim, claimed, is_dead, last_claim_number, once, release
from reproai.runtime._storage import open_storage
from reproai.runtime._workers import worker_alive, worker_id


@pytest.fixture(params=["sqlite", "journal"])
def storage(request, tmp_path):
    url = f"sqlite:///{tmp_path / 'o.db'}" if request.param == "sqlite" else f"journal:{tmp_path / 'o.journal'}"
    return open_storage(url)


def test_the_first_claim_wins_and_its_value_is_shared(storage):
    first = claim(storage, "work")
    assert first is not None
    assert claim(storage, "work") is None  # held by the first
    assert claimed(storage, "work") is None
    release(first, value={"run_id": "abc"})
    assert claim(storage, "work") is None  # done
    assert claimed(storage, "work")["run_id"] == "abc"
    assert once(storage, "work", lambda: pytest.fail("must not run again"))[0]["run_id"] == "abc"


def test_a_released_failed_claim_can_be_claimed_again(storage):
    first = claim(storage, "work")
    release(first, reason="RuntimeError: boom")
    second = claim(storage, "work")
    assert second is not None and second.number > first.number


def test_a_dead_workers_claim_is_failed_and_the_next_worker_wins(storage):
    first = claim(storage, "work")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    storage.set_trial_user_attr(first._trial_id, "worker", f"{socket.gethostname()}:{pid}:12345")
    assert worker_alive(f"{socket.gethostname()}:{pid}:12345") is False
    second = claim(storage, "work")
    assert second is not None
    trials = second.study.get_trials(deepcopy=False)
    assert (
        trials[first.number].state.name == "FAIL" and trials[first.number].user_attrs["failed_reason"] == "worker died"
    )


def test_is_dead_uses_the_heartbeat_for_other_hosts(storage, monkeypatch):
    trial = claim(storage, "work")
    frozen = trial.study.get_trials(deepcopy=False)[trial.number]
    assert worker_alive(worker_id()) is True and not is_dead(frozen)
    storage.set_trial_user_attr(trial._trial_id, "worker", "elsewhere:1:1")
    storage.set_trial_user_attr(trial._trial_id, "heartbeat", 1000.0)
    frozen = trial.study.get_trials(deepcopy=False)[trial.number]
    assert worker_alive("elsewhere:1:1") is None and is_dead(frozen)


def test_fresh_work_is_claimed_after_the_newest_claim(storage):
    value, created = once(storage, "study", lambda: {"run_id": "old"})
    assert created and value["run_id"] == "old"
    after = last_claim_number(storage, "study")
    value, created = once(storage, "study", lambda: {"run_id": "new"}, after=after)
    assert created and value["run_id"] == "new"
    assert once(storage, "study", lambda: {"run_id": "x"})[0]["run_id"] == "new"  # the newest is resumed
