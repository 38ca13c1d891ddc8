"""Nothing reproai starts listens on a public interface."""

from pathlib import Path

import pytest

from reproai.cluster._local import local_tracking_server


def _listening(port: int) -> list[str]:
    """Local addresses listening on ``port`` (from /proc/net/tcp and tcp6)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, hexport = local.rsplit(":", 1)
            if state == "0A" and int(hexport, 16) == port:  # 0A: LISTEN
                found.append(address)
    return found


@pytest.mark.slow
def test_the_local_tracking_server_listens_on_loopback_only(tmp_path):
    with local_tracking_server(f"sqlite:///{tmp_path / 'm.db'}", tmp_path / "a") as uri:
        port = int(uri.rsplit(":", 1)[1])
        addresses = _listening(port)
        assert addresses and set(addresses) == {"0100007F"}  # 127.0.0.1, little-endian hex


def test_documented_server_recipes_bind_localhost_or_use_authentication():
    from tests.conftest import REPO

    text = (REPO / "docs" / "cluster.md").read_text() + (REPO / "README.md").read_text()
    commands = [line for line in text.splitlines() if line.strip().startswith("mlflow server")]
    assert commands
    for line in commands:
        assert "--host 127.0.0.1" in line or "--app-name basic-auth" in line, line
    assert "0.0.0.0" not in " ".join(commands)
