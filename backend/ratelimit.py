"""Per-user request rate limit (A-7): a token bucket per user, in process memory.

Off by default. With several worker processes each keeps its own buckets, so the effective limit
is per worker; put a shared limiter (e.g. at the proxy) in front when that matters.
"""

import math
import time

from fastapi import HTTPException, status

MAX_TRACKED_USERS = 100_000


class RateLimiter:
    def __init__(self, per_minute: int) -> None:
        self.capacity = float(per_minute)
        self.refill_per_second = per_minute / 60.0
        self._buckets: dict[str, tuple[float, float]] = {}  # user -> (tokens, last update)

    def check(self, user_id: str) -> None:
        """Spend one token of `user_id`'s bucket, or raise 429 with the wait in `Retry-After`."""
        if self.capacity == 0:
            return
        now = time.monotonic()
        tokens, last = self._buckets.get(user_id, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.refill_per_second)
        if tokens < 1:
            wait = math.ceil((1 - tokens) / self.refill_per_second)
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                detail="Too many requests; slow down",
                headers={"Retry-After": str(wait)},
            )
        if len(self._buckets) >= MAX_TRACKED_USERS and user_id not in self._buckets:
            self._buckets.clear()  # bounded memory; forgetting only ever refills buckets
        self._buckets[user_id] = (tokens - 1, now)
