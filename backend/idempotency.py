"""`Idempotency-Key` (IETF httpapi draft, FR-021): the header's value, and forgetting old keys.

A client whose create got no answer (a 503, a dropped connection) cannot know whether the task
was stored; resending it with the same key is safe: the create is one statement that stores the
key with the task or finds the first create's key (`crud.create_task_once`). How long keys are
remembered (`KEY_LIFETIME`) and why they have a table of their own: README "Safe retries" and
the `0002` migration.

Old keys are deleted in the background (`ExpiredKeyCleanup`, started by the app's lifespan), in
bounded batches, so no create ever waits for the cleanup or pays a statement for it.
"""

import asyncio
import contextlib
import logging
import random
from datetime import timedelta

from backend import crud
from backend.db import Database, DatabaseUnavailableError

logger = logging.getLogger("backend")

KEY_LIFETIME = timedelta(hours=24)
MAX_KEY_LENGTH = 255
CLEANUP_INTERVAL_SECONDS = 300.0
CLEANUP_BATCH = 1000


class InvalidKeyError(ValueError):
    """The header is not a key: the reason is the 422's message."""


def parse_key(value: str) -> str:
    """The key in an `Idempotency-Key` value: an RFC 8941 string (`"…"`, with `\\"` and `\\\\`
    escapes), or the bare text Stripe-style clients send; 1-255 printable ASCII characters."""
    value = value.strip(" ")
    key = _unquote(value) if value.startswith('"') else value
    if not key:
        raise InvalidKeyError("must not be empty")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidKeyError(f"must be at most {MAX_KEY_LENGTH} characters")
    if not (key.isascii() and key.isprintable()):  # %x20-7E
        raise InvalidKeyError("must be printable ASCII characters")
    return key


def _unquote(value: str) -> str:
    """RFC 8941's sf-string, section 4.2.5; printable ASCII is checked by the caller."""
    key: list[str] = []
    chars = iter(value[1:])
    for char in chars:
        if char == "\\":
            escaped = next(chars, "")
            if escaped not in ('"', "\\"):
                raise InvalidKeyError('in a quoted key a backslash escapes only \\" and \\\\')
            key.append(escaped)
        elif char == '"':
            if next(chars, None) is not None:
                raise InvalidKeyError("nothing may come after a quoted key's closing quote")
            return "".join(key)
        else:
            key.append(char)
    raise InvalidKeyError("a quoted key needs its closing quote")


class ExpiredKeyCleanup:
    """Deletes keys older than `lifetime` every `interval` seconds, `batch` rows per statement.

    Every worker runs one, at a random point of its first interval so that they spread out;
    batches skip rows another worker is deleting, so running several is harmless. A failure
    (the database down) is logged once, when the cleanup starts failing, and tried again at the
    next interval: it never ends the loop or the worker.
    """

    def __init__(
        self,
        database: Database,
        *,
        lifetime: timedelta = KEY_LIFETIME,
        interval: float = CLEANUP_INTERVAL_SECONDS,
        batch: int = CLEANUP_BATCH,
    ) -> None:
        self._database = database
        self._lifetime = lifetime
        self._interval = interval
        self._batch = batch
        self._failing = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="idempotency-key-cleanup")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        await asyncio.sleep(random.uniform(0, self._interval))  # noqa: S311 - spreading, not secrecy
        while True:
            await self.sweep()
            await asyncio.sleep(self._interval)

    async def sweep(self) -> int:
        """Delete every expired key, a batch at a time; how many were deleted."""
        deleted = 0
        try:
            while True:
                count = await crud.delete_expired_keys(self._database, self._lifetime, self._batch)
                deleted += count
                if count < self._batch:
                    break
        except Exception as failure:  # the loop must outlive any one failure
            if not self._failing:
                logger.warning(
                    "expired idempotency keys not deleted (tried again every %g s): %s: %s",
                    self._interval,
                    type(failure).__name__,
                    failure,
                    exc_info=not isinstance(failure, DatabaseUnavailableError),
                )
            self._failing = True
            return deleted
        if self._failing:
            logger.info("expired idempotency keys are deleted again")
            self._failing = False
        return deleted
