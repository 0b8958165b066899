"""Reserves whose outcome Redis never told: each may have placed a hold nobody knows of, and is
resolved here, in the background, as soon as Redis answers again.

A reserve sent and unanswered was answered ``store_unavailable`` (or decided in fallback); if
its script ran, its hold is voided (store.void: it stops counting at once, a late commit is
still charged in full) and its idempotency record dropped, so that the caller's retry is
decided afresh. A retry that reaches this sidecar first waits for the void (``settle``).

(A commit or release sent and unanswered goes to the spool, service/fallback.py: it must
survive a restart, a forgotten void only keeps a hold until its TTL.)
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Callable

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
        self._task: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._voids)

    def void_later(self, customer: str, idempotency_key: str, reservation_id: str) -> None:
        self._voids[(customer, idempotency_key)] = reservation_id
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
            rid = self._voids.pop(next(iter(self._voids)))
            log.error("too many reserves of unknown outcome; gave up on %s", rid)
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
        """Try each void once, stopping at the first Redis does not answer."""
        try:
            for (customer, key), rid in list(self._voids.items()):
                await self._void(customer, key, rid)
        except StoreError:
            return

    async def close(self) -> None:
        """One last try, then stop; what is left resolves by its TTL."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.try_all()
        if self:
            log.warning("stopping with %d reserves of unknown outcome", len(self))
