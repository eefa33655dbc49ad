"""uvicorn's httptools protocol, hardened so that one connection can never cost everyone.

uvicorn's protocol trusts its peer: it queues every pipelined request of a read, merges chunked
trailer fields into the request's headers, waits forever for a head, a body or a reader, and
accepts connections up to the process's file limit. Each limit here is counted per message, and
a refusal is written only once every request already accepted has been answered, so no answer
ever lands over a request still in flight and nothing runs that is not answered.
Why this and not another server: docs/decisions/0005-http-server.md.
"""

import asyncio
import http
import json
from dataclasses import dataclass
from typing import Any

import httptools
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState

from backend.http_watch import Awaited, MessageMeter, Watchdog
from backend.lifecycle import Lifecycle

# Above the app's 64 KiB header limit, so heads between the two still get its JSON 431.
MAX_HEAD_BYTES = 128 * 1024
# The parser is fed at most this much at a time: the work a refused read costs stays bounded.
FEED_BYTES = 16 * 1024
# At shutdown, how long a connection that has sent nothing yet may take to send its request.
SHUTDOWN_GRACE = 1.0
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class EdgeLimits:
    """What one connection may cost a worker (`Settings` fields `http_*`)."""

    head_timeout: float = 10.0  # a head must arrive, a body keep arriving, a reader keep reading
    max_connections: int = 2048  # per worker; past it a 503 and close
    max_pipelined: int = 16  # requests queued behind the one in flight
    max_head_bytes: int = MAX_HEAD_BYTES  # request line + headers, and chunk framing + trailers
    linger: float = 2.0  # after a refusal, how long the peer may take to read it


class EdgeState(ServerState):
    """uvicorn's per-worker server state, plus what the hardened protocol reads."""

    def __init__(self, limits: EdgeLimits, lifecycle: Lifecycle) -> None:
        super().__init__()
        self.limits = limits
        self.lifecycle = lifecycle


def canned(status: int, detail: str, retry_after: int | None = None) -> bytes:
    """A complete JSON error answer that closes the connection, written by the server itself."""
    body = json.dumps({"detail": detail}).encode()
    head = [
        f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        "connection: close",
    ]
    if retry_after is not None:
        head.append(f"retry-after: {retry_after}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


OVERLOADED = canned(503, "Server busy; retry shortly", retry_after=1)
HEAD_TIMEOUT = canned(408, "Request not received in time")
HEAD_TOO_LARGE = canned(400, "Request head too large")
TOO_MANY_PIPELINED = canned(400, "Too many pipelined requests")
INVALID_REQUEST = canned(400, "Invalid HTTP request")
QUEUED_BODY_TOO_LARGE = canned(413, "Request body too large")


class _RefusedError(Exception):
    """Raised from a parser callback to stop parsing at once (the refusal is already set)."""


class MessageLimitedProtocol(HttpToolsProtocol):
    """What a peer may send: requests queued behind the one in flight, bytes of a head or of
    a message's chunk framing and trailers, a queued request's body. Past a limit, the refusal
    waits until every request already accepted is answered, then closes the connection."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        if isinstance(server_state, EdgeState):
            self._limits, self._lifecycle = server_state.limits, server_state.lifecycle
        else:  # under a plain uvicorn.Server
            self._limits, self._lifecycle = EdgeLimits(), Lifecycle()
        self._meter = MessageMeter()
        self._refusal: bytes | None = None
        self._running: RequestResponseCycle | None = None
        self._task: asyncio.Task[None] | None = None

    def data_received(self, data: bytes) -> None:
        if self._refusal is not None:
            return  # refused: the rest of what was already read is dropped
        self._unset_keepalive_if_required()
        for start in range(0, len(data), FEED_BYTES):
            chunk = data if len(data) <= FEED_BYTES else data[start : start + FEED_BYTES]
            self._meter.feeding()
            try:
                self.parser.feed_data(chunk)
            except httptools.HttpParserUpgrade:
                self._unsupported_upgrade_warning()
                return
            except httptools.HttpParserError:
                if self._refusal is None:  # not one of ours (`_RefusedError`): malformed input
                    self.logger.warning("Invalid HTTP request received.")
                    self._refuse(INVALID_REQUEST)
                return
            if self._meter.fed(len(chunk)) > self._limits.max_head_bytes:
                self._refuse(HEAD_TOO_LARGE)
                return

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._meter.begin()

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._meter.in_head:
            super().on_header(name, value)
        # else a chunked trailer field: counted as overhead, never a header of the request

    def on_headers_complete(self) -> None:
        self._meter.head_complete()
        if len(self.pipeline) >= self._limits.max_pipelined:
            self._refuse(TOO_MANY_PIPELINED)
            raise _RefusedError
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self._meter.body(len(body))
        super().on_body(body)
        if self.cycle is not self._running and len(self.cycle.body) > self._limits.max_head_bytes:
            # A queued request's body waits in memory for its turn: bounded like a head.
            self._refuse(QUEUED_BODY_TOO_LARGE)
            raise _RefusedError

    def on_message_complete(self) -> None:
        self._meter.complete()
        super().on_message_complete()

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        task = self.loop.create_task(cycle.run_asgi(app))
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)
        self._running, self._task = cycle, task

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._refusal is not None and not self._busy() and not self.transport.is_closing():
            self._send_refusal()

    def _busy(self) -> bool:
        """A request accepted and not yet answered (in flight, or queued behind it)."""
        return self.cycle is not None and not self.cycle.response_complete

    def _refuse(self, answer: bytes) -> None:
        """Answer `answer` and close, once every request accepted so far has been answered."""
        if self._refusal is not None:
            return
        self._refusal = answer
        self.flow.pause_reading()
        cycle = self.cycle
        if cycle is not None and cycle.more_body and self.pipeline and self.pipeline[0][0] is cycle:
            self.pipeline.popleft()  # queued, its body incomplete: it never runs
            self.cycle = self.pipeline[0][0] if self.pipeline else self._running  # type: ignore[assignment]
        if not self._busy():
            self._send_refusal()

    def _send_refusal(self) -> None:
        assert self._refusal is not None
        if self.transport.is_closing():
            return
        self.transport.write(self._refusal)
        # Half-close; reading stays paused, so a peer still sending is not read.
        if self.transport.can_write_eof():
            self.transport.write_eof()


class HardenedHttpToolsProtocol(MessageLimitedProtocol):
    """Also how long and how many: a head, a body's next bytes, a reader for the answers each
    within `head_timeout`; connections per worker; `Connection: close` while the worker drains;
    a read whose client went away cancelled (see the module docstring)."""

    _watch: Watchdog

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._watch = Watchdog(self.loop, self._limits.head_timeout, self._timed_out)
        super().connection_made(transport)
        if len(self.connections) > self._limits.max_connections:
            self._refusal = OVERLOADED
            self._send_refusal()
        else:
            self._watch.start("head")

    def connection_lost(self, exc: Exception | None) -> None:
        self._watch.stop()
        running = self._running
        if running is not None and not running.response_complete:
            running.disconnected = True
            if self._task is not None and running.scope["method"] in _SAFE_METHODS:
                # A read nobody waits for any more: cancelling it cancels its statement on the
                # server. A write runs on: its fate must not become unknown.
                self._task.cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._refusal is None:
            self._watch_what_is_missing()

    def pause_writing(self) -> None:
        super().pause_writing()
        self._watch.start("reader")

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._watch.awaiting == "reader":
            self._watch.stop()
            self._watch_what_is_missing()

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if self._lifecycle.draining:
            self.cycle.keep_alive = False  # answered with `Connection: close`

    def shutdown(self) -> None:
        """The server stops accepting: close this connection once its answers are out. One that
        has not sent a whole head yet may have a request on its way (connected just before the
        listener closed): it gets a short while for that request, answered with a close."""
        if self.cycle is not None:
            super().shutdown()
        elif not self._meter.message_open:
            self._watch.start("head", SHUTDOWN_GRACE)

    def _send_refusal(self) -> None:
        self._watch.stop()
        super()._send_refusal()
        # Linger before the reset that closing with unread input means: the peer reads first.
        self._watch.start("goodbye", self._limits.linger)

    def _watch_what_is_missing(self) -> None:
        """After a read: the rest of a head, or more of a body, within the timeout."""
        if not self._meter.message_open:
            if self._watch.awaiting in ("head", "body"):
                self._watch.stop()
        elif self._meter.in_head:
            if self._watch.awaiting != "head":
                self._watch.start("head")  # counted from the first byte of the head, not reset
        elif self._watch.awaiting == "body":
            self._watch.moved()
        else:
            self._watch.start("body")

    def _timed_out(self, awaited: Awaited) -> None:
        if self.transport.is_closing() and awaited != "goodbye":
            return
        if awaited == "head":
            if self._meter.message_open:
                self._refuse(HEAD_TIMEOUT)  # part of a head came, the rest did not
            else:
                self._close()  # a connection that never sent a byte
        elif awaited == "body":
            self._body_timed_out()
        else:  # the reader stopped reading, or the refused peer never said goodbye
            self.transport.abort()

    def _body_timed_out(self) -> None:
        if self.cycle is not self._running:
            self._refuse(HEAD_TIMEOUT)  # queued: dropped, answered after the one in flight
            return
        cycle = self.cycle
        if not cycle.response_started:
            self.transport.write(HEAD_TIMEOUT)
        cycle.disconnected = True  # the app's next receive() says so; its answer is dropped
        cycle.message_event.set()
        self._close()

    def _close(self) -> None:
        if self.transport.get_write_buffer_size():
            self.transport.abort()  # nobody reads what is buffered: no flush to wait for
        else:
            self.transport.close()
