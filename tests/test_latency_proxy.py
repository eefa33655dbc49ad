"""The latency proxy really adds its delay per round trip, loses the answer it is told to, and
stops without leaving threads."""

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadtests.latency_proxy import LatencyProxy

DELAY_MS = 40


def _echo(server: socket.socket) -> None:
    """Answer every connection with what it sends, until the listener is closed."""
    while True:
        try:
            connection, _ = server.accept()
        except OSError:
            return
        threading.Thread(target=_answer, args=(connection,), daemon=True).start()


def _answer(connection: socket.socket) -> None:
    with connection:
        while data := connection.recv(65536):
            connection.sendall(data)


@pytest.fixture(params=["tcp", "unix"])
def echo_target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An echo server on 127.0.0.1:port or on a Unix socket; the proxy target naming it."""
    if request.param == "tcp":
        server = socket.create_server(("127.0.0.1", 0))
        target = f"127.0.0.1:{server.getsockname()[1]}"
    else:
        path = tmp_path / "echo.sock"
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(path))
        server.listen()
        target = str(path)
    threading.Thread(target=_echo, args=(server,), daemon=True).start()
    yield target
    server.close()


def _round_trip(address: tuple[str, int]) -> float:
    with socket.create_connection(address) as connection:
        started = time.perf_counter()
        connection.sendall(b"ping")
        assert connection.recv(16) == b"ping"
        return (time.perf_counter() - started) * 1000


@pytest.mark.spec("SC-004")  # the proxy is how SC-004 is measured at Neon-like distance
def test_round_trip_through_the_proxy_takes_at_least_the_delay(echo_target: str) -> None:
    with LatencyProxy(echo_target, DELAY_MS) as proxy:
        elapsed = [_round_trip(proxy.address) for _ in range(3)]
    assert min(elapsed) >= DELAY_MS
    assert max(elapsed) < DELAY_MS * 5


@pytest.mark.spec("SC-004")
def test_stop_ends_the_proxy_thread_with_a_connection_open(echo_target: str) -> None:
    def proxy_threads() -> set[threading.Thread]:
        # By name: other threads of the test process (an event loop's, a pool's) come and go.
        return {thread for thread in threading.enumerate() if thread.name == "latency-proxy"}

    before = proxy_threads()
    proxy = LatencyProxy(echo_target, 0)
    proxy.start()
    held = socket.create_connection(proxy.address)
    assert proxy_threads() - before  # its thread runs
    proxy.stop()
    held.close()
    assert proxy_threads() <= before
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(proxy.address, timeout=1)


@pytest.mark.spec("EC-3", "FR-021")  # how the suite makes a write whose fate is unknown
def test_a_lost_answer_reaches_the_server_and_never_the_client() -> None:
    """The request marked is delivered (the server records it and answers), its answer is
    dropped and the connection ends; once only: the next request is answered again."""
    received: list[bytes] = []
    server = socket.create_server(("127.0.0.1", 0))
    threading.Thread(target=_record_and_answer, args=(server, received), daemon=True).start()
    try:
        with LatencyProxy(f"127.0.0.1:{server.getsockname()[1]}", 0) as proxy:
            assert _exchange(proxy.address, b"before") == b"ok"
            proxy.lose_answer_to(b"doomed")
            assert _exchange(proxy.address, b"the doomed request") == b""
            assert _exchange(proxy.address, b"after") == b"ok"
    finally:
        server.close()
    assert received == [b"before", b"the doomed request", b"after"]


def _record_and_answer(server: socket.socket, received: list[bytes]) -> None:
    """Read each connection to its end, record it, answer "ok"; until the listener closes."""
    while True:
        try:
            connection, _ = server.accept()
        except OSError:
            return
        with connection:
            message = b""
            while chunk := connection.recv(65536):
                message += chunk
            received.append(message)
            connection.sendall(b"ok")


def _exchange(address: tuple[str, int], message: bytes) -> bytes:
    """What comes back for `message` before the connection ends (b"" for nothing at all)."""
    with socket.create_connection(address, timeout=5) as connection:
        connection.sendall(message)
        connection.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
        return answer
