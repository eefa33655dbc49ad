"""What one HTTP connection is awaited for and how much of a message is not body: the two
counts the hardened protocol (`backend.http_protocol`) judges a peer by."""

import asyncio
from collections.abc import Callable
from typing import Literal

# The rest of a head, more of a body, a reader for the answers, the peer's goodbye after a refusal.
Awaited = Literal["head", "body", "reader", "goodbye"]


class Watchdog:
    """The one timer of a connection: what it awaits, since when, and whom to tell when that
    does not come within `timeout`. A head's time counts from its first byte; a body's from the
    last bytes that moved (`moved`)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        timeout: float,
        on_timeout: Callable[[Awaited], None],
    ) -> None:
        self._loop = loop
        self._timeout = timeout
        self._on_timeout = on_timeout
        self._timer: asyncio.TimerHandle | None = None
        self.awaiting: Awaited | None = None
        self._since = 0.0

    def start(self, what: Awaited, seconds: float | None = None) -> None:
        self.stop()
        self.awaiting, self._since = what, self._loop.time()
        self._timer = self._loop.call_later(seconds or self._timeout, self._check)

    def moved(self) -> None:
        self._since = self._loop.time()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.awaiting = None

    def _check(self) -> None:
        left = self._timeout - (self._loop.time() - self._since)
        if self.awaiting == "body" and left > 0:  # body bytes moved meanwhile
            self._timer = self._loop.call_later(left, self._check)
            return
        awaited, self._timer, self.awaiting = self.awaiting, None, None
        if awaited is not None:
            self._on_timeout(awaited)


class MessageMeter:
    """Where the parser is in the current message, and how many of its bytes were not body
    (request line, headers, chunk framing, trailers): per message, never per read."""

    def __init__(self) -> None:
        self.message_open = False  # from the first byte of a request to its last
        self.in_head = True
        self._overhead = 0
        self._body = 0

    def begin(self) -> None:
        self.message_open, self.in_head, self._overhead = True, True, 0

    def head_complete(self) -> None:
        self.in_head = False

    def body(self, size: int) -> None:
        self._body += size

    def complete(self) -> None:
        self.message_open, self.in_head = False, True

    def feeding(self) -> None:
        self._body = 0

    def fed(self, size: int) -> int:
        """The overhead of the open message once `size` bytes were parsed (an upper bound: a
        message that began within them is charged all of their non-body bytes)."""
        if self.message_open:
            self._overhead += size - self._body
        return self._overhead if self.message_open else 0
