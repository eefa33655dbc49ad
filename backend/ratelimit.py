"""Per-user request rate limit (A-7): `RATE_LIMIT_PER_MINUTE` requests per user, then 429 with
`Retry-After`; 0 turns it off.

- In this process's memory by default: a token bucket per user, O(1) a request and bounded, so
  the limit applies per worker process (it multiplies by workers x instances).
- Shared by every worker and instance with `RATE_LIMIT_STORAGE_URL` (`redis://host:6379/0`): a
  sliding-window counter per user in Redis, through the `limits` package, one round trip per
  request (a second one only to say when to retry, on a refusal).
- A Redis that does not answer within `REDIS_TIMEOUT` never takes the API down: the process's own
  bucket stands in (logged once), and Redis is tried again `REDIS_RETRY_EVERY` later.

`limits`' in-memory storage is not used: it scans every tracked user on each hit
(docs/decisions/0008-rate-limit.md).
"""

import logging
import math
import time

from fastapi import HTTPException, status
from limits import RateLimitItemPerMinute
from limits.aio.storage import RedisStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.errors import StorageError
from redis.asyncio import ConnectionPool

logger = logging.getLogger("backend")

MAX_TRACKED_USERS = 100_000
REDIS_TIMEOUT = 0.25
REDIS_RETRY_EVERY = 5.0


def storage_uri(url: str) -> str:
    """`limits`' name for a redis-py URL (`redis://…` is `async+redis://…` there)."""
    return "async+redis+" + url if url.startswith("unix:") else f"async+{url}"


def too_many(wait: float) -> HTTPException:
    return HTTPException(
        status.HTTP_429_TOO_MANY_REQUESTS,
        detail="Too many requests; slow down",
        headers={"Retry-After": str(max(1, math.ceil(wait)))},
    )


class TokenBuckets:
    """One bucket per user in this process: `per_minute` tokens, refilled continuously."""

    def __init__(self, per_minute: int) -> None:
        self.capacity = float(per_minute)
        self.refill_per_second = per_minute / 60.0
        self._buckets: dict[str, tuple[float, float]] = {}  # user -> (tokens, last update)

    def take(self, user_id: str) -> None:
        """Spend one of `user_id`'s tokens, or raise 429 with the wait in `Retry-After`."""
        now = time.monotonic()
        tokens, last = self._buckets.get(user_id, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.refill_per_second)
        if tokens < 1:
            raise too_many((1 - tokens) / self.refill_per_second)
        if len(self._buckets) >= MAX_TRACKED_USERS and user_id not in self._buckets:
            self._buckets.clear()  # bounded memory; forgetting only ever refills buckets
        self._buckets[user_id] = (tokens - 1, now)


class RateLimiter:
    def __init__(self, per_minute: int, storage_url: str | None = None) -> None:
        self._local = TokenBuckets(per_minute) if per_minute else None
        self._item = RateLimitItemPerMinute(per_minute or 1)
        self._shared: SlidingWindowCounterRateLimiter | None = None
        self._redis: ConnectionPool | None = None
        if storage_url and per_minute:
            # Our own pool, handed to `limits`, so that shutdown can close its connections.
            self._redis = ConnectionPool.from_url(
                storage_url, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT
            )
            storage = RedisStorage(
                storage_uri(storage_url),
                wrap_exceptions=True,
                implementation="redispy",
                connection_pool=self._redis,  # type: ignore[arg-type]  # passed on to redis-py
            )
            self._shared = SlidingWindowCounterRateLimiter(storage)
        self._shared_down_since: float | None = None
        self._shared_retry_at = 0.0

    async def check(self, user_id: str) -> None:
        """Count one request of `user_id`'s, or raise 429."""
        if self._local is None:
            return
        if self._shared is not None and time.monotonic() >= self._shared_retry_at:
            try:
                allowed = await self._shared.hit(self._item, user_id)
                if not allowed:
                    reset_at = (await self._shared.get_window_stats(self._item, user_id)).reset_time
            except StorageError as failure:
                self._shared_failed(failure)
            else:
                self._shared_answered()
                if not allowed:
                    raise too_many(reset_at - time.time())
                return
        self._local.take(user_id)

    async def aclose(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()

    def _shared_failed(self, failure: StorageError) -> None:
        now = time.monotonic()
        self._shared_retry_at = now + REDIS_RETRY_EVERY
        if self._shared_down_since is None:
            self._shared_down_since = now
            logger.warning(
                "rate limit storage unreachable (%s): this process's own limit applies meanwhile",
                type(failure.storage_error).__name__,
            )

    def _shared_answered(self) -> None:
        if self._shared_down_since is not None:
            logger.info(
                "rate limit storage answers again after %.0f s",
                time.monotonic() - self._shared_down_since,
            )
            self._shared_down_since = None
