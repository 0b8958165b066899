"""Exactly once: a worker killed between its PostgreSQL commit and its XACK, and two workers
in one consumer group, never leave an event missing or doubled."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from sidecar.ledger.db import Pool
from sidecar.ledger.streams import Entry
from sidecar.store.redis_store import RedisStore
from tests.conftest import Setup
from tests.ledger.conftest import Call, drain, worker

pytestmark = [pytest.mark.redis, pytest.mark.postgres]


class Crash(Exception):
    """The worker dies here: its transaction committed, its XACK never sent."""


async def crash(_: Sequence[Entry]) -> None:
    raise Crash


async def ledger_counts(pool: Pool) -> tuple[int, int, int]:
    async with pool.acquire() as db:
        row = await db.fetchrow(
            "SELECT (SELECT count(*) FROM usage_events) AS usage,"
            " (SELECT count(*) FROM ledger_entries) AS entries,"
            " (SELECT coalesce(sum(cost_nanos), 0) FROM usage_events) AS cost"
        )
    assert row is not None
    return row["usage"], row["entries"], int(row["cost"])


async def pending(store: RedisStore) -> int:
    return int((await store.client.xpending(store.layout.stream_of("acme"), "ledger"))["pending"])


@pytest.mark.parametrize("restart_as", ["same consumer", "another consumer"])
async def test_crash_after_commit_before_ack_loses_and_doubles_nothing(
    store: RedisStore, pool: Pool, setup_customer: Setup, call: Call, restart_as: str
) -> None:
    await setup_customer(grants={"paid": "10"})
    costs = [await call(units={"input_tokens": 100 + i}, team="eng") for i in range(30)]
    total = sum(100 + i for i in range(30)) * 1000
    assert sum(int(c.cost.replace(".", "")) for c in costs if c.cost) == total

    doomed = worker(store, pool, "w1", after_commit=crash)
    with pytest.raises(Crash):
        await drain(doomed)
    assert await ledger_counts(pool) == (30, 32, total)  # written ...
    # ... but not acknowledged: customer, 2 grants, 2 audit entries, 30 debits
    assert await pending(store) == 35

    if restart_as == "same consumer":
        # A restarted worker first reads its own pending history.
        stored = await drain(worker(store, pool, "w1"))
    else:
        # Another worker claims what the dead one left once it has been idle long enough.
        await asyncio.sleep(0.05)
        stored = await drain(worker(store, pool, "w2", claim_min_idle_ms=10))
    assert stored == 35
    assert await ledger_counts(pool) == (30, 32, total)  # nothing doubled, nothing missing
    assert await pending(store) == 0

    # New calls after the restart flow as usual.
    await call(units={"input_tokens": 7}, team="eng")
    assert await drain(worker(store, pool, "w3")) == 1
    assert await ledger_counts(pool) == (31, 33, total + 7000)


async def test_two_workers_in_one_group_store_every_event_exactly_once(
    store: RedisStore, pool: Pool, setup_customer: Setup, call: Call
) -> None:
    customers = [f"c{i}" for i in range(8)]
    for customer in customers:
        await setup_customer(customer, grants={"paid": "10"})
    first, second = worker(store, pool, "w1", batch_max=7), worker(store, pool, "w2", batch_max=7)
    stop = asyncio.Event()
    running = [asyncio.create_task(w.run(stop)) for w in (first, second)]
    committed = []
    for i in range(240):  # commits land while both workers read
        done = await call(customers[i % 8], units={"input_tokens": 1 + i}, team="eng")
        committed.append(1 + i)
        if i % 40 == 0:
            await asyncio.sleep(0.01)
    # Per customer: customer, plan grant, admin grant, an audit entry for each admin change;
    # then the debits.
    entries = 8 * 5 + 240
    async with asyncio.timeout(20):
        while first.stored + second.stored < entries:
            await asyncio.sleep(0.01)
    stop.set()
    await asyncio.gather(*running)
    assert done.result == "committed"
    assert first.stored > 0
    assert second.stored > 0
    assert first.stored + second.stored == entries  # and no entry went to both
    async with pool.acquire() as db:
        usage = await db.fetchval("SELECT count(*) FROM usage_events")
        distinct = await db.fetchval("SELECT count(DISTINCT request_id) FROM usage_events")
        cost = await db.fetchval("SELECT sum(cost_nanos) FROM usage_events")
    assert usage == distinct == 240
    assert int(cost) == sum(committed) * 1000
