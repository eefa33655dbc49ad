"""Small hostile HTTP servers on loopback, for tests of our own HTTP clients.

A `HostileServer` listens on 127.0.0.x, reads each request's head (and a declared body), records
it, and answers with one `Answer` (drip, gzip bomb, endless body, redirect, wrong content type,
or plain JSON). It is bounded in time: every answer gives up after `ANSWER_SECONDS`, and
`stop()` (the context manager's exit) ends them all at once and joins every thread, so a test
that uses one never outlives it. `connections` counts what arrived, so a second server can prove
that nothing reached it.
"""

import gzip
import io
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache

# No answer outlives this, whatever the client does.
ANSWER_SECONDS = 20.0


@dataclass(frozen=True)
class Received:
    """One request as it arrived: method, target and headers (names in lower case)."""

    method: str
    target: str
    headers: dict[str, str]


class Connection:
    """The accepted socket of one request, and the server's stop signal."""

    def __init__(self, sock: socket.socket, stopping: threading.Event) -> None:
        self.sock = sock
        self.stopping = stopping
        self.give_up_at = time.monotonic() + ANSWER_SECONDS

    @property
    def over(self) -> bool:
        return self.stopping.is_set() or time.monotonic() >= self.give_up_at

    def send(self, data: bytes) -> bool:
        """Whether `data` went out (False once the client hung up or the answer is over)."""
        if self.over:
            return False
        try:
            self.sock.sendall(data)
        except OSError:
            return False
        return True

    def pause(self, seconds: float) -> None:
        self.stopping.wait(seconds)


Answer = Callable[[Connection, Received], None]


def head(status: str, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status}", *(f"{name}: {value}" for name, value in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def json_answer(status: str, document: object) -> Answer:
    body = json.dumps(document).encode()

    def answer(conn: Connection, _: Received) -> None:
        headers = {"Content-Type": "application/json", "Content-Length": str(len(body))}
        conn.send(head(status, headers) + body)

    return answer


def drip(interval: float = 2.0, *, in_head: bool = False) -> Answer:
    """One byte every `interval` seconds, for ever: in the body, or already in the headers."""

    def answer(conn: Connection, _: Received) -> None:
        if in_head:
            opening = b"HTTP/1.1 200 OK\r\nX-Drip: "
        else:
            declared = {"Content-Type": "application/json", "Content-Length": "1000000"}
            opening = head("200 OK", declared)
        conn.send(opening)
        while conn.send(b"a"):
            conn.pause(interval)

    return answer


@cache
def gzip_bomb(inflated: int = 256 * 1024 * 1024) -> bytes:
    """`inflated` zero bytes gzipped (a thousandth of the size), made without holding them."""
    buffer = io.BytesIO()
    chunk = bytes(1024 * 1024)
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=9) as compressed:
        for _ in range(inflated // len(chunk)):
            compressed.write(chunk)
    return buffer.getvalue()


def bomb(conn: Connection, _: Received) -> None:
    """A JSON answer whose gzip body inflates a thousandfold, whatever Accept-Encoding said."""
    body = gzip_bomb()
    headers = {
        "Content-Type": "application/json",
        "Content-Encoding": "gzip",
        "Content-Length": str(len(body)),
    }
    conn.send(head("200 OK", headers) + body)


def endless(conn: Connection, _: Received) -> None:
    """A chunked JSON body that never ends, sent as fast as the client reads."""
    conn.send(head("200 OK", {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}))
    chunk = b"%x\r\n%s\r\n" % (64 * 1024, b" " * 64 * 1024)
    conn.send(b"1\r\n[\r\n")
    while conn.send(chunk):
        pass


def redirect(location: str, status: str = "307 Temporary Redirect") -> Answer:
    def answer(conn: Connection, _: Received) -> None:
        conn.send(head(status, {"Location": location, "Content-Length": "0"}))

    return answer


def html(conn: Connection, _: Received) -> None:
    """A 200 that is a web page, as a login wall or a misrouted proxy answers."""
    body = b"<!doctype html><html><body>Sign in</body></html>"
    headers = {"Content-Type": "text/html", "Content-Length": str(len(body))}
    conn.send(head("200 OK", headers) + body)


class HostileServer:
    """Answers every request on `host` with `answer`, records it, and stops when told."""

    def __init__(self, answer: Answer, host: str = "127.0.0.1") -> None:
        self.answer = answer
        self.received: list[Received] = []
        self.connections = 0
        self._stopping = threading.Event()
        self._listener = socket.create_server((host, 0))
        self._listener.settimeout(0.1)
        self.url = f"http://{host}:{self._listener.getsockname()[1]}"
        self._threads: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, name="hostile-accept")

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            thread = threading.Thread(target=self._serve, args=(sock,), name="hostile-answer")
            self._threads.append(thread)
            thread.start()

    def _serve(self, sock: socket.socket) -> None:
        conn = Connection(sock, self._stopping)
        sock.settimeout(1.0)
        with sock:
            while not conn.over:
                request = self._read_request(sock)
                if request is None:
                    return
                self.received.append(request)
                self.answer(conn, request)
                if request.headers.get("connection", "").lower() == "close":
                    return

    def _read_request(self, sock: socket.socket) -> Received | None:
        data = b""
        while b"\r\n\r\n" not in data:
            if self._stopping.is_set() or len(data) > 64 * 1024:
                return None
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return None
            if not chunk:
                return None
            data += chunk
        raw_head, _, body = data.partition(b"\r\n\r\n")
        request_line, *lines = raw_head.decode("latin-1").split("\r\n")
        method, target, _ = request_line.split(" ", 2)
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0") or 0)
        while len(body) < length and not self._stopping.is_set():
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                break
            body += chunk
        return Received(method, target, headers)

    def start(self) -> None:
        self._accepting.start()

    def stop(self) -> None:
        self._stopping.set()
        self._accepting.join(timeout=5)
        self._listener.close()
        for thread in self._threads:
            thread.join(timeout=5)
        assert not any(thread.is_alive() for thread in self._threads), "an answer did not stop"


@contextmanager
def serving(answer: Answer, host: str = "127.0.0.1") -> Iterator[HostileServer]:
    server = HostileServer(answer, host)
    server.start()
    try:
        yield server
    finally:
        server.stop()
