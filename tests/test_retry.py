"""Waiting out a server that went away: retried while it may come back, a clear stop after that."""

import pytest

from reproai.errors import TrackingError
from reproai.runtime._retry import Patience, is_unreachable


class Server:
    """A call that fails with a refused connection ``down`` times, then answers."""

    def __init__(self, down: int) -> None:
        self.down, self.calls = down, 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.down:
            raise ConnectionError("[Errno 111] Connection refused")
        return "answer"


def test_a_short_failure_is_waited_out_with_a_message(capsys):
    server = Server(down=1)
    patience = Patience("the test server", is_unreachable, "REPROAI_TEST_RETRY_S", patience=30)
    assert patience.call(server) == "answer"
    assert server.calls == 2
    err = capsys.readouterr().err
    assert "the test server is not answering (ConnectionError); retrying for up to 30 s (REPROAI_TEST_RETRY_S)" in err
    assert "the test server answers again" in err


def test_a_failure_that_outlasts_the_patience_stops_with_a_clear_error():
    server = Server(down=10**6)
    patience = Patience("the test server", is_unreachable, "REPROAI_TEST_RETRY_S", patience=0)
    with pytest.raises(
        TrackingError,
        match="the test server has not answered for 0 s .*Connection refused.*run the same command again to resume",
    ):
        patience.call(server)
    assert server.calls == 2


def test_after_giving_up_later_calls_fail_at_once_without_trying():
    # Each try of a server that is down takes the client's own retries; the calls that end runs on the
    # way out must not add those up.
    server = Server(down=10**6)
    patience = Patience("the test server", is_unreachable, "REPROAI_TEST_RETRY_S", patience=0)
    with pytest.raises(TrackingError):
        patience.call(server)
    tried = server.calls
    with pytest.raises(TrackingError, match="has not answered for 0 s .*Connection refused"):
        patience.call(server)
    assert server.calls == tried


def test_an_error_that_is_not_a_lost_connection_is_raised_as_it_is():
    def bad_request():
        raise ValueError("no such run")

    patience = Patience("the test server", is_unreachable, "REPROAI_TEST_RETRY_S", patience=30)
    with pytest.raises(ValueError, match="no such run"):
        patience.call(bad_request)
