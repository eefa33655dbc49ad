"""The database's circuit breaker: once connects fail or cancels go unanswered, stop trying.

Open, the pool answers at once (503 + `Retry-After`) instead of sending every request into a
database that does not answer, and only probes (a connection attempt at a time, a new one at most
every `PROBE_EVERY` while the last still hangs, never more than `MAX_PROBES`) try again; the
first that connects closes it. A statement that merely outlives its deadline on a live server
(its cancel is answered) does not open it: that is the statement's cost, not the database's.
See docs/decisions/0007-fairness-and-circuit-breaker.md.
"""

import logging
import time

logger = logging.getLogger("backend")

MAX_PROBES = 2
PROBE_EVERY = 1.0


class Breaker:
    def __init__(self) -> None:
        self.open = False
        self._opened_at = 0.0
        self._probes = 0
        self._last_probe = -PROBE_EVERY

    def failed(self, reason: str) -> None:
        if not self.open:
            self.open, self._opened_at = True, time.monotonic()
            logger.warning("database circuit open (%s): answering 503 while probes retry", reason)

    def succeeded(self) -> None:
        if self.open:
            self.open = False
            logger.info("database circuit closed after %.1f s", time.monotonic() - self._opened_at)

    def allow_probe(self) -> bool:
        """Whether a probe may start now; if so, it counts until `probe_ended`."""
        now = time.monotonic()
        if self._probes and (self._probes >= MAX_PROBES or now - self._last_probe < PROBE_EVERY):
            return False
        self._probes, self._last_probe = self._probes + 1, now
        return True

    def probe_ended(self) -> None:
        self._probes -= 1
