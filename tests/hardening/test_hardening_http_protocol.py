"""The production server's request-head limit, in-process: the protocol class under a real uvicorn.

`python -m backend` serves with `HardenedHttpToolsProtocol`; the live-server tests in
`test_hardening_limits.py` attack that command. These drive the same protocol under a uvicorn
`Server` in a thread of the test process, so the cut-off, the JSON 431 below it and keep-alive
after it are seen at the byte level.
"""

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import uvicorn

from backend.config import Settings
from backend.http_protocol import MAX_HEAD_BYTES, HardenedHttpToolsProtocol
from backend.main import create_app
from devtools.servers import free_port
from tests.support.hardening import raw_exchange, status_of


@pytest.fixture(scope="module")
def port(make_settings: Callable[..., Settings]) -> Iterator[int]:
    config = uvicorn.Config(
        create_app(make_settings()),
        host="127.0.0.1",
        port=free_port(),
        http=HardenedHttpToolsProtocol,
        lifespan="on",
        log_level="warning",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:  # uvicorn offers no event to wait on
        time.sleep(0.01)
    yield config.port
    server.should_exit = True
    thread.join(10)


def head(size: int) -> bytes:
    """A GET /health whose headers add up to about `size` bytes, in fields of 1000 bytes."""
    fields = "".join(f"X-Pad-{n}: {'p' * 990}\r\n" for n in range(size // 1000))
    return f"GET /health HTTP/1.1\r\nHost: x\r\n{fields}\r\n".encode()


@pytest.mark.spec("EC-2", "SC-009")
def test_a_head_over_the_limit_is_refused_as_it_streams_in(port: int) -> None:
    answer = raw_exchange(port, head(MAX_HEAD_BYTES + 64 * 1024))

    assert status_of(answer) == 400
    assert answer.endswith(b'{"detail": "Request head too large"}')


@pytest.mark.spec("EC-2", "SC-009")
def test_a_head_under_the_limit_but_over_the_apps_gets_the_json_431(port: int) -> None:
    answer = raw_exchange(port, head(96 * 1000))

    assert status_of(answer) == 431
    assert answer.endswith(b'{"detail":"Request headers too large"}')


@pytest.mark.spec("FR-020", "SC-009")
def test_keep_alive_requests_each_start_a_fresh_count(port: int) -> None:
    """Several heads of 60 KB on one connection add up past the limit; each is judged alone."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        for _ in range(4):
            sock.sendall(head(60 * 1000))
            answer = b""
            while b'"database"' not in answer:
                chunk = sock.recv(65536)
                assert chunk, "the server closed a connection it should keep alive"
                answer += chunk
            assert status_of(answer) == 200
