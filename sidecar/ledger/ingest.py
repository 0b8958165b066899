"""One ledger worker: stream entries in, one PostgreSQL transaction per batch, then XACK.

The order is the guarantee: an entry is acknowledged only after the transaction that stored
it has committed. A worker that dies in between leaves the entry pending; it is read again
(by the same consumer from its pending history at start, or by any live worker through
XAUTOCLAIM once it has been idle ``claim_min_idle_ms``) and stored again, which the unique
event ids absorb. So every entry is stored exactly once, whatever crashes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

from sidecar.ledger.db import Pool
from sidecar.ledger.events import Event, Unparsed, decode_entry
from sidecar.ledger.metrics import LedgerMetrics
from sidecar.ledger.streams import Entry, StreamReader
from sidecar.ledger.workers import Membership, shares
from sidecar.ledger.writer import write_batch

__all__ = ["Ingestor"]

log = logging.getLogger(__name__)

Hook = Callable[[Sequence[Entry]], Awaitable[None]]


class Ingestor:
    """Reads the shards' streams through ``reader`` and stores into ``pool``: all of them, or
    with a ``membership`` this worker's share of them.

    Bounds: ``batch_max`` entries per transaction; maintenance (heartbeat and take this
    worker's shards, claim from dead workers, trim stored entries) runs at most every
    ``*_every_ms``, each over the shards, whatever the number of customers.
    """

    def __init__(
        self,
        reader: StreamReader,
        pool: Pool,
        *,
        batch_max: int = 5000,
        max_in_flight: int = 2,
        poll_ms: int = 50,
        membership: Membership | None = None,
        heartbeat_every_ms: int = 1000,
        claim_every_ms: int = 5000,
        claim_min_idle_ms: int = 30_000,
        trim_every_ms: int = 10_000,
        trim: bool = True,
        after_commit: Hook | None = None,
        metrics: LedgerMetrics | None = None,
    ) -> None:
        self.reader = reader
        self.pool = pool
        self.batch_max = batch_max
        self.max_in_flight = max_in_flight
        self.poll_ms = poll_ms
        self.membership = membership
        self.live: list[str] | None = None
        """The live workers at the last heartbeat; None: no membership (one worker)."""
        self.heartbeat_every_ms = heartbeat_every_ms
        self.claim_every_ms = claim_every_ms
        self.claim_min_idle_ms = claim_min_idle_ms
        self.trim_every_ms = trim_every_ms
        self.trim_enabled = trim
        self.after_commit = after_commit
        """Called between the commit and the XACK: tests crash the worker there."""
        self.metrics = metrics if metrics is not None else LedgerMetrics()
        self.stored = 0
        """Entries stored and acknowledged by this worker (re-deliveries included)."""
        self.unparsed = 0
        self.error: str | None = None
        """Why the last run failed, until a run starts again (the supervisor sets it)."""
        self._due: dict[str, float] = {}

    def _is_due(self, task: str, every_ms: int) -> bool:
        now = time.monotonic()
        if now < self._due.get(task, 0.0):
            return False
        self._due[task] = now + every_ms / 1000
        return True

    async def start(self) -> None:
        """Create the group on the streams, store what this consumer left pending on any of
        them, then take this worker's shards."""
        await self.reader.start()
        while pending := await self.reader.read_own_pending(self.batch_max):
            await self._store(pending)
        await self._take_shards()
        self._is_due("heartbeat", self.heartbeat_every_ms)
        self.error = None

    async def _take_shards(self) -> None:
        if self.membership is not None:
            self.live = await self.membership.beat()
            self.reader.assign(shares(self.reader.consumer, self.live, self.reader.layout.shards))

    async def _maintain(self) -> int:
        """Heartbeat, claim from dead workers, trim: each when due. Entries stored."""
        stored = 0
        if self._is_due("heartbeat", self.heartbeat_every_ms):
            await self._take_shards()
        if self._is_due("claim", self.claim_every_ms):
            while claimed := await self.reader.claim(
                self.claim_min_idle_ms, self.batch_max, live=self.live
            ):
                await self._store(claimed)
                stored += len(claimed)
        if self.trim_enabled and self._is_due("trim", self.trim_every_ms):
            await self.reader.trim()
        return stored

    async def step(self) -> int:
        """One round: maintenance when due, then one batch of new entries. Entries stored."""
        stored = await self._maintain()
        entries = await self.reader.read_new(self.batch_max)
        if entries:
            await self._store(entries)
        return stored + len(entries)

    def _decode(self, entries: Sequence[Entry]) -> list[Event]:
        seen: set[tuple[bytes, bytes]] = set()
        events = []
        for key, entry_id, fields in entries:
            if (key, entry_id) in seen:
                continue
            seen.add((key, entry_id))
            event = decode_entry(self.reader.layout, key, entry_id, fields)
            if isinstance(event, Unparsed):
                log.warning("stream %s entry %s kept unparsed: %s", key, entry_id, event.problem)
                self.unparsed += 1
                self.metrics.unparsed.inc()
            events.append(event)
        return events

    async def _commit_and_ack(self, entries: Sequence[Entry], events: list[Event]) -> None:
        started = time.perf_counter_ns()
        async with self.pool.acquire() as connection:
            await write_batch(connection, events)
        if self.after_commit is not None:
            await self.after_commit(entries)
        await self.reader.ack(entries)
        self.stored += len(entries)
        self.metrics.batch(len(entries), started)

    async def _store(self, entries: Sequence[Entry]) -> None:
        await self._commit_and_ack(entries, self._decode(entries))

    async def run(self, stop: asyncio.Event) -> None:
        """Ingest until ``stop`` is set; waits ``poll_ms`` whenever a round finds nothing.

        While batches are being written (at most ``max_in_flight``, each in its own
        transaction on its own connection), the next one is read and decoded: PostgreSQL and
        this process work at the same time.
        """
        await self.start()
        writing: deque[asyncio.Task[None]] = deque()

        async def settle(keep: int) -> None:
            while len(writing) > keep or (writing and writing[0].done()):
                await writing.popleft()

        try:
            while not stop.is_set():
                await settle(self.max_in_flight if not self._due_soon() else 0)
                stored = 0 if writing else await self._maintain()
                entries = await self.reader.read_new(self.batch_max)
                if entries:
                    events = self._decode(entries)
                    await settle(self.max_in_flight - 1)
                    writing.append(asyncio.create_task(self._commit_and_ack(entries, events)))
                elif stored == 0:
                    await settle(0)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), self.poll_ms / 1000)
        finally:
            for task in writing:
                with contextlib.suppress(Exception):
                    await task
            if self.membership is not None:  # the others take its shards at once
                with contextlib.suppress(Exception):
                    await self.membership.leave()

    def _due_soon(self) -> bool:
        now = time.monotonic()
        return any(now >= due for due in self._due.values())
