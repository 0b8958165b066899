"""Ledger takeover in seconds: a worker that stops heartbeating leaves the live set, and the
entries it had read and not acknowledged are claimed by a live worker at once, not after
the 30-second idle time that protects a live worker's entries in flight."""

from __future__ import annotations

import asyncio

import pytest

from sidecar.ledger.db import Pool
from sidecar.ledger.ingest import Ingestor
from sidecar.ledger.streams import StreamReader
from sidecar.ledger.workers import Membership
from sidecar.store.redis_store import RedisStore
from tests.conftest import Setup
from tests.ledger.conftest import Call

pytestmark = [pytest.mark.redis, pytest.mark.postgres]

TIMEOUT_MS = 500
"""How long a worker stays in the live set after its last heartbeat (test setting)."""
WAIT_S = 30.0
"""Far more than the takeover needs; only a bug waits this long."""


def _member(store: RedisStore, pool: Pool, consumer: str) -> Ingestor:
    reader = StreamReader(store.client, store.layout, group="ledger", consumer=consumer)
    membership = Membership(store.client, store.layout, "ledger", consumer, timeout_ms=TIMEOUT_MS)
    return Ingestor(
        reader, pool, membership=membership, heartbeat_every_ms=100, claim_every_ms=100,
        claim_min_idle_ms=600_000, trim=False,
    )  # fmt: skip


async def test_a_dead_workers_pending_entries_are_stored_within_seconds(
    store: RedisStore, pool: Pool, setup_customer: Setup, call: Call
) -> None:
    for customer in ("a1", "a2", "a3"):
        await setup_customer(customer, grants={"paid": "10"})
        await call(customer, units={"input_tokens": 100})
    dead = _member(store, pool, "dead")
    await dead.reader.start()
    await dead._take_shards()  # heartbeats once: for a moment it owns every shard
    read = await dead.reader.read_new(1000)  # read, never stored nor acknowledged: it dies
    # Per customer: creation, plan grant, admin grant, the debit, and two audit entries.
    assert len(read) == 3 * 6

    live = _member(store, pool, "live")
    stop = asyncio.Event()
    running = asyncio.create_task(live.run(stop))
    try:
        async with asyncio.timeout(WAIT_S):
            while live.stored < len(read):
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        await running
    assert live.stored == len(read)  # long before the 600 s idle time a live one would get
    summary = await store.client.xpending(store.layout.stream_of("a1"), "ledger")
    assert summary["pending"] == 0
