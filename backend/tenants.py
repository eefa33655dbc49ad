"""Per-user statement slots: one user's flood waits for that user's own slots, never for others'.

At most `DB_STATEMENTS_PER_USER` statements of one user are in flight at once; the next waits,
first come first served, for one of them to end, and past the admission wait it is a 429. So a
user with many expensive requests holds only a bounded share of the pool, while a burst of one
user's cheap requests (concurrent toggles) still all succeed, a few slots at a time.
"""

from backend.db_errors import TenantBusyError
from backend.handoff import Handoff


class TenantSlots:
    def __init__(self, per_tenant: int) -> None:
        self._limit = per_tenant
        self._busy: dict[str, int] = {}  # only tenants with statements in flight: bounded
        self._waiting: dict[str, Handoff[None]] = {}

    async def acquire(self, tenant: str, give_up: float) -> None:
        """A slot of `tenant`'s, or `TenantBusyError` at the loop time `give_up`."""
        busy = self._busy.get(tenant, 0)
        if busy < self._limit:
            self._busy[tenant] = busy + 1
            return
        queue = self._waiting.setdefault(tenant, Handoff())
        try:
            await queue.wait(give_up, lambda _: self.release(tenant))  # a slot handed over
        except TimeoutError:
            raise TenantBusyError("this user's statements in flight are at the limit") from None
        finally:
            if not queue and self._waiting.get(tenant) is queue:
                del self._waiting[tenant]

    def release(self, tenant: str) -> None:
        """Hand the slot to `tenant`'s next waiter, or free it."""
        queue = self._waiting.get(tenant)
        if queue is not None and queue.hand(None):
            return
        busy = self._busy[tenant] - 1
        if busy:
            self._busy[tenant] = busy
        else:
            del self._busy[tenant]
