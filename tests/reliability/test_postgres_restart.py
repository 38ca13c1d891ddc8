"""Item 3: the PostgreSQL server behind the Optuna storage restarts mid-study; the workers reconnect
and carry on, and the study finishes with every trial once."""

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from optuna.trial import TrialState

from tests.conftest import fold_studies
from tests.test_cluster import CONFIG, _check_study, _finish, _postgres_database


def _cluster_command(action: str) -> list[str]:
    if shutil.which("pg_ctlcluster") is None or not Path("/etc/postgresql").is_dir():
        return []
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    return ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action] + (
        ["-m", "fast"] if action == "stop" else []
    )


@pytest.fixture
def pg_storage():
    admin, name = _postgres_database()
    admin.close()  # this connection would not survive the restart
    from tests.test_cluster import PG

    yield f"{PG}/{name}"
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.mark.slow
def test_workers_reconnect_after_postgres_restarts(pg_storage, tracking_server, workers, write_config, tmp_path):
    if not _cluster_command("stop") or os.geteuid() != 0:
        if os.environ.get("REPROAI_REQUIRE_POSTGRES"):
            pytest.fail("restarting PostgreSQL needs pg_ctlcluster, run as root")
        pytest.skip("restarting PostgreSQL needs pg_ctlcluster, run as root")
    path = write_config(CONFIG)
    procs = workers(path, tracking_server, pg_storage, 2, tmp_path)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if any(t.state == TrialState.COMPLETE for s in fold_studies(pg_storage).values() for t in s.trials):
                break
        except Exception:
            pass
        time.sleep(0.5)
    # A restart with a few seconds' gap (a fast stop ends every session), so that the workers meet it.
    try:
        subprocess.run(_cluster_command("stop"), check=True, timeout=120)
        time.sleep(5)
    finally:
        subprocess.run(_cluster_command("start"), check=True, timeout=120)
    outputs = [_finish(p) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(o[-3000:] for o in outputs)
    _check_study(tracking_server, pg_storage)  # every trial complete once, every run finished, the headline once
    said = "\n".join(outputs)
    assert "reproai: the Optuna storage (PostgreSQL at 127.0.0.1:5432/" in said and "is not answering" in said
    assert "answers again (reconnected after" in said
