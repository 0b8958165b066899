"""Calls whose outcome Redis never told: a reserve that may have placed a hold nobody knows of,
and a commit or release that may have applied. Each is resolved here, in the background, as
soon as Redis answers again.

* A reserve sent and unanswered was answered ``store_unavailable``; if its script ran, its hold
  is voided (store.void: it stops counting at once, a late commit is still charged in full)
  and its idempotency record dropped, so that the caller's retry is decided afresh. A retry
  that reaches this sidecar first waits for the void (``settle``).
* A commit or release sent and unanswered was answered ``outcome_unknown``; it is sent again,
  with the same charge, until Redis answers: the first answer stands, and the caller's own
  retry gets it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Awaitable, Callable

from sidecar.errors import StoreError
from sidecar.store.redis_store import RedisStore

__all__ = ["Unsettled"]

log = logging.getLogger(__name__)

RETRY_S = 0.1
"""How often the unsettled calls are tried again while Redis does not answer."""
MAX_UNSETTLED = 100_000
"""Beyond this, the oldest is given up (logged): its hold expires by its TTL."""


class Unsettled:
    def __init__(self, store: RedisStore, clock: Callable[[], int]) -> None:
        self.store = store
        self.clock = clock
        self._voids: dict[tuple[str, str], str] = {}
        """(customer, idempotency key) -> the reservation id the unanswered attempt carried."""
        self._repeats: dict[str, Callable[[], Awaitable[object]]] = {}
        """Reservation id -> its commit or release, sent again until answered."""
        self._task: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._voids) + len(self._repeats)

    def void_later(self, customer: str, idempotency_key: str, reservation_id: str) -> None:
        self._voids[(customer, idempotency_key)] = reservation_id
        self._added()

    def repeat_later(self, reservation_id: str, call: Callable[[], Awaitable[object]]) -> None:
        self._repeats[reservation_id] = call
        self._added()

    async def settle(self, customer: str, idempotency_key: str) -> None:
        """Before a reserve with this key: undo what an unanswered attempt here may have
        placed; StoreError while Redis cannot tell."""
        rid = self._voids.get((customer, idempotency_key))
        if rid is not None:
            await self._void(customer, idempotency_key, rid)

    async def _void(self, customer: str, idempotency_key: str, rid: str) -> None:
        await self.store.void(
            customer, reservation_id=rid, idempotency_key=idempotency_key, now_ms=self.clock()
        )
        self._voids.pop((customer, idempotency_key), None)

    def _added(self) -> None:
        """Bound what waits (dropping the oldest), and make sure it is being worked on."""
        while len(self) > MAX_UNSETTLED:
            if self._voids:
                customer, key = next(iter(self._voids))
                rid = self._voids.pop((customer, key))
            else:
                rid = next(iter(self._repeats))
                del self._repeats[rid]
            log.error("too many calls of unknown outcome; gave up on %s", rid)
        if self._task is None or self._task.done():
            # A context of its own: not the deadline of the request that left the call.
            self._task = asyncio.get_running_loop().create_task(
                self._run(), context=contextvars.Context()
            )

    async def _run(self) -> None:
        while self:
            await asyncio.sleep(RETRY_S)
            await self.try_all()

    async def try_all(self) -> None:
        """Try each unsettled call once, stopping at the first Redis does not answer."""
        try:
            for (customer, key), rid in list(self._voids.items()):
                await self._void(customer, key, rid)
            for rid, call in list(self._repeats.items()):
                try:
                    await call()
                except StoreError:
                    raise
                except Exception:  # a bug: logged, and not repeated for ever
                    log.exception("repeating the call of reservation %s failed", rid)
                self._repeats.pop(rid, None)
        except StoreError:
            return

    async def close(self) -> None:
        """One last try, then stop; what is left resolves by its TTL (holds) or stays with the
        caller, told ``outcome_unknown`` (commits, releases)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.try_all()
        if self:
            log.warning("stopping with %d calls of unknown outcome", len(self))
