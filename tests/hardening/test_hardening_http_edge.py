"""The HTTP edge against hostile HTTP/1.1 (EC-9, SC-011): raw sockets against `python -m backend`.

Each case is what one unauthenticated client can do to a worker, and what it must not cost the
others: a pipelined flood (bounded memory, others answered within a second, no traceback), chunked
trailers (never headers: no `Authorization`, no `X-Request-ID` from a trailer; bounded like a
head), silent and half-sent connections (closed by the head timeout, 408 for a partial head), a
body that stops arriving, thousands of pipelined POSTs (every stored row acknowledged, no answer
written over one in flight), and connections past the per-worker bound (503 + `Retry-After`).
"""

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil
import pytest
from sqlalchemy.engine import URL, Engine

from backend.http_protocol import EdgeLimits
from devtools.servers import Server, backend_server
from tests.support.hardening import backend_env, raw_exchange, report, status_of
from tests.support.helpers import Caller, count_tasks

HEAD_TIMEOUT = 1.0
LINGER = EdgeLimits().linger
# Another client's answer during an attack: within SC-001's 2 s (old code: 9.3-24 s). Measured:
# 158-348 ms, printed; under the suite's coverage tracer (the server traced too) once 1.1 s, the
# first request after the burst, so not the suggested 1 s.
OTHERS_WITHIN = 2.0


@pytest.fixture
def edge_backend(database_url: URL, tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """A fresh `python -m backend` (one worker) with a short head timeout, and `**env` on top;
    its output goes to `server.log_path`."""
    started: list[Server] = []

    def start(**env: str) -> Server:
        server = backend_server(
            backend_env(database_url, HTTP_HEAD_TIMEOUT_SECONDS=str(HEAD_TIMEOUT), **env),
            log_path=tmp_path / f"backend-{len(started)}.log",
        )
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def port_of(server: Server) -> int:
    return int(server.url.rsplit(":", 1)[1])


def worker(server: Server) -> psutil.Process:
    assert server.process is not None
    return psutil.Process(server.process.pid)


def timed_get(url: str) -> float:
    started = time.monotonic()
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200, response.text
    return time.monotonic() - started


def read_all(sock: socket.socket, seconds: float) -> bytes:
    """What the server sends until it closes the connection, or `seconds` pass."""
    sock.settimeout(seconds)
    chunks = []
    with contextlib.suppress(OSError):
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def responses(data: bytes) -> list[tuple[int, bytes]]:
    """The (status, body) of each response in a stream of HTTP/1.1 answers, in order; a stream
    that does not parse as whole responses one after another raises."""
    found = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        assert sep, f"not a whole response: {data[:80]!r}"
        assert head.startswith(b"HTTP/1.1 "), f"not a response: {data[:80]!r}"
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        assert len(rest) >= length, "a response cut short"
        found.append((int(head.split(b" ", 2)[1]), rest[:length]))
        data = rest[length:]
    return found


# --- 1. a pipelined flood --------------------------------------------------------------------


@pytest.mark.spec("SC-011", "EC-9", "SC-001")
def test_a_pipelined_flood_costs_bounded_memory_and_delays_no_one(
    edge_backend: Callable[..., Server],
) -> None:
    """100 connections each write 120 KiB of pipelined `GET /health`, never read, then vanish:
    before, the worker's RSS went 134 -> 980 MiB, others waited up to 24 s, and closing the
    sockets logged a traceback per connection."""
    server = edge_backend()
    process = worker(server)
    timed_get(server.url + "/health")
    rss_before = process.memory_info().rss
    burst = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n" * (120 * 1024 // 34)
    attackers = [socket.create_connection(("127.0.0.1", port_of(server))) for _ in range(100)]

    def flood(sock: socket.socket) -> None:
        sock.settimeout(5)
        with contextlib.suppress(OSError):
            sock.sendall(burst)

    peak, latencies = rss_before, []
    with ThreadPoolExecutor(100) as threads:
        list(threads.map(flood, attackers))
        until = time.monotonic() + 3
        while time.monotonic() < until:
            latencies.append(timed_get(server.url + "/health"))
            peak = max(peak, process.memory_info().rss)
    for sock in attackers:
        sock.close()
    timed_get(server.url + "/health")  # after the peers vanished mid-answer
    assert server.log_path is not None
    tracebacks = server.log_path.read_text(errors="replace").count("Traceback")
    grown = (peak - rss_before) / 2**20
    report(
        "Pipelined flood",
        1 + len(latencies),
        (grown > 150) + sum(latency > OTHERS_WITHIN for latency in latencies) + tracebacks,
        f"100 x 120 KiB pipelined, never read: worker RSS +{grown:.0f} MiB, "
        f"{len(latencies)} other requests, slowest {max(latencies) * 1000:.0f} ms, "
        f"{tracebacks} tracebacks once the peers vanished",
    )
    assert grown < 150  # ~1 MiB a connection, whatever it sends
    assert max(latencies) < OTHERS_WITHIN
    assert tracebacks == 0  # before: one per connection closed mid-answer
    assert server.process is not None
    assert server.process.poll() is None


# --- 2. trailers -----------------------------------------------------------------------------


def chunked_post(path: str, body: bytes, head: str = "", trailer: str = "") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{head}"
        f"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    ).encode() + b"%x\r\n%s\r\n0\r\n%s\r\n" % (len(body), body, trailer.encode())


@pytest.mark.spec("EC-9", "FR-001", "FR-017")
def test_trailer_fields_never_act_as_headers(
    edge_backend: Callable[..., Server], db_engine: Engine
) -> None:
    """Before: a POST whose `Authorization` came only in the trailer was stored (201), and a
    trailer's `X-Request-ID` was echoed."""
    server = edge_backend()
    user = Caller("trailer-user-0123456789abcdefghi")
    body = json.dumps({"title": "smuggled"}).encode()
    smuggled = raw_exchange(
        port_of(server),
        chunked_post(
            user.tasks,
            body,
            trailer=f"Authorization: Bearer {user.token}\r\nX-Request-ID: from-the-trailer\r\n",
        ),
    )
    honest = raw_exchange(
        port_of(server),
        chunked_post(
            user.tasks,
            body,
            head=f"Authorization: Bearer {user.token}\r\n",
            trailer="X-Request-ID: from-the-trailer\r\n",
        ),
    )
    report(
        "Chunked trailers",
        2,
        (status_of(smuggled) != 401) + (b"from-the-trailer" in smuggled + honest),
        f"Authorization only in the trailer: {status_of(smuggled)}; "
        f"with it in the head: {status_of(honest)}",
    )
    assert status_of(smuggled) == 401
    assert status_of(honest) == 201
    assert b"from-the-trailer" not in smuggled + honest
    assert count_tasks(db_engine, user.id) == 1


@pytest.mark.spec("EC-9", "SC-011", "EC-2")
def test_a_huge_trailer_is_cut_off_like_a_head_and_stalls_no_one(
    edge_backend: Callable[..., Server],
) -> None:
    """Before: a 48 MiB trailer was parsed whole (5.7 s) while others waited up to 3.7 s."""
    server = edge_backend()
    user = Caller("big-trailer-user-0123456789abcd")
    sent, latencies = 0, []
    done = threading.Event()

    def attack() -> None:
        nonlocal sent
        with socket.create_connection(("127.0.0.1", port_of(server)), timeout=10) as sock:
            try:
                sock.sendall(chunked_post(user.tasks, b'{"title":"x"}').removesuffix(b"\r\n"))
                sock.sendall(b"X-Pad: ")
                chunk = b"p" * (1 << 20)
                while sent < 48 << 20:
                    sock.sendall(chunk)
                    sent += len(chunk)
            except OSError:
                pass  # refused as it streamed in
            finally:
                done.set()

    thread = threading.Thread(target=attack)
    thread.start()
    while not done.is_set() or len(latencies) < 5:
        latencies.append(timed_get(server.url + "/health/live"))
    thread.join()
    report(
        "48 MiB trailer",
        1 + len(latencies),
        (sent >= 48 << 20) + sum(latency > OTHERS_WITHIN for latency in latencies),
        f"refused after {sent / 2**20:.0f} MiB; others' slowest {max(latencies) * 1000:.0f} ms",
    )
    assert sent < 48 << 20
    assert max(latencies) < OTHERS_WITHIN


# --- 3. silence ------------------------------------------------------------------------------


@pytest.mark.spec("EC-9", "SC-011")
def test_silent_and_half_sent_connections_are_closed_by_the_head_timeout(
    edge_backend: Callable[..., Server],
) -> None:
    """Before: 1 000 silent and 1 000 half-head connections were all still open after 30 s."""
    server = edge_backend()
    process = worker(server)
    fds_before = process.num_fds()
    half = []
    for _ in range(300):  # each sends half a head at once, well within the timeout
        sock = socket.create_connection(("127.0.0.1", port_of(server)))
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Half: ")
        half.append(sock)
    silent = [socket.create_connection(("127.0.0.1", port_of(server))) for _ in range(300)]
    with ThreadPoolExecutor(len(half) + len(silent)) as threads:  # all read at once
        answers = list(threads.map(lambda s: read_all(s, HEAD_TIMEOUT + 4), half + silent))
    half_answers, silent_answers = answers[: len(half)], answers[len(half) :]
    time.sleep(LINGER + 0.5)  # a refused connection lingers that long for its peer to read
    fds_after = process.num_fds()
    for sock in silent + half:
        sock.close()
    closed_silently = sum(answer == b"" for answer in silent_answers)
    got_408 = sum(status_of(answer) == 408 for answer in half_answers)
    report(
        "Silent and half-sent connections",
        len(silent) + len(half),
        (len(silent) - closed_silently) + (len(half) - got_408),
        f"head timeout {HEAD_TIMEOUT} s: {closed_silently} silent closed, {got_408} half heads "
        f"answered 408; worker fds {fds_before} -> {fds_after}",
    )
    assert closed_silently == len(silent)
    assert got_408 == len(half)
    assert fds_after < fds_before + 20


@pytest.mark.spec("EC-9", "SC-011", "EC-2")
def test_a_body_that_stops_arriving_is_closed_and_nothing_stored(
    edge_backend: Callable[..., Server], db_engine: Engine
) -> None:
    server = edge_backend()
    user = Caller("stalled-body-user-0123456789abc")
    with socket.create_connection(("127.0.0.1", port_of(server))) as sock:
        sock.sendall(
            (
                f"POST {user.tasks} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {user.token}\r\n"
                "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
            ).encode()
            + b'{"title": "never fin'
        )
        started = time.monotonic()
        answer = read_all(sock, HEAD_TIMEOUT + 4)
        took = time.monotonic() - started
    assert status_of(answer) == 408
    assert took < HEAD_TIMEOUT + 2
    assert count_tasks(db_engine, user.id) == 0


# --- 4. pipelined requests -------------------------------------------------------------------


def pipelined_posts(user: Caller, count: int) -> bytes:
    body = b'{"title":"p"}'
    one = (
        f"POST {user.tasks} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {user.token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    return one * count


@pytest.mark.spec("EC-9", "SC-002", "SC-011")
def test_every_stored_row_of_a_pipelined_burst_was_acknowledged(
    edge_backend: Callable[..., Server], db_engine: Engine
) -> None:
    """3 061 POSTs in one write. Before: one 201, then a 400 written over a request still in
    flight, and 2 rows stored, one of them never acknowledged."""
    server = edge_backend()
    user = Caller("pipelined-user-0123456789abcdef")
    with socket.create_connection(("127.0.0.1", port_of(server))) as sock:
        with contextlib.suppress(OSError):
            sock.sendall(pipelined_posts(user, 3061))
        answers = responses(read_all(sock, 10))
    created = [status for status, _ in answers if status == 201]
    stored = count_tasks(db_engine, user.id)
    report(
        "Pipelined POSTs",
        3061,
        int(stored != len(created)) + int(answers[-1][0] not in (201, 400)),
        f"{len(created)} answered 201, {stored} rows stored, last answer {answers[-1][0]} "
        f"{answers[-1][1].decode()[:40]}",
    )
    assert stored == len(created) > 1  # more than one: pipelining itself still works
    assert all(status == 201 for status, _ in answers[:-1])
    assert answers[-1][0] in (201, 400)


@pytest.mark.spec("EC-9", "SC-002")
def test_garbage_after_a_request_is_answered_after_it_never_over_it(
    edge_backend: Callable[..., Server], db_engine: Engine
) -> None:
    server = edge_backend()
    user = Caller("garbage-user-0123456789abcdefghi")
    with socket.create_connection(("127.0.0.1", port_of(server))) as sock:
        sock.sendall(pipelined_posts(user, 1) + b"\x00\x01 NOT HTTP\r\n\r\n")
        answers = responses(read_all(sock, 5))
    assert [status for status, _ in answers] == [201, 400]
    assert count_tasks(db_engine, user.id) == 1


# --- 5. the connection bound -----------------------------------------------------------------


@pytest.mark.spec("SC-011", "EC-9")
def test_connections_past_the_bound_get_a_503_and_the_others_are_served(
    edge_backend: Callable[..., Server],
) -> None:
    server = edge_backend(HTTP_MAX_CONNECTIONS="20")
    held = [socket.create_connection(("127.0.0.1", port_of(server))) for _ in range(20)]
    time.sleep(0.2)
    try:
        over = raw_exchange(port_of(server), b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        held[0].close()
        time.sleep(0.2)
        served = raw_exchange(port_of(server), b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
    finally:
        for sock in held:
            sock.close()
    assert status_of(over) == 503
    assert b"retry-after: 1" in over.lower()
    assert b'"detail"' in over
    assert status_of(served) == 200
