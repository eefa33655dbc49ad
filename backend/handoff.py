"""Callers waiting their turn for what others hand over (a connection, a user's slot)."""

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Handoff(Generic[T]):
    """First come, first served; what is handed over just as a wait ends is passed on, never
    lost (the waiter's `pass_on` gives it to the next)."""

    def __init__(self) -> None:
        self._waiting: deque[asyncio.Future[T]] = deque()

    def __len__(self) -> int:
        return len(self._waiting)

    async def wait(self, until: float, pass_on: Callable[[T], None]) -> T:
        """What is handed over before the loop time `until`; `TimeoutError` after it."""
        waiter: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        try:
            async with asyncio.timeout_at(until):
                return await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                pass_on(waiter.result())
            else:
                waiter.cancel()
                with contextlib.suppress(ValueError):
                    self._waiting.remove(waiter)
            raise

    def hand(self, value: T) -> bool:
        """Give `value` to the first still waiting; False when nobody waits."""
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(value)
                return True
        return False

    def fail(self, failure: Callable[[], BaseException]) -> None:
        """Every waiter learns now that nothing is coming: `failure()` is raised in each."""
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_exception(failure())
