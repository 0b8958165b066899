"""The store client coalesces concurrent script calls over a fixed few connections: a burst
costs no connection set-up and cannot exhaust Redis's client limit; a deadline bounds the
whole Redis work of a request, queueing included."""

from __future__ import annotations

import asyncio
import time

import pytest

from bench.faults import FaultProxy
from sidecar.service import Service
from sidecar.store.redis_store import RedisStore
from sidecar.wire import ReserveRequest
from tests.conftest import REDIS_TIMEOUT_S, Clock, Setup

pytestmark = pytest.mark.redis

CONNECTIONS = 8


def _reserve(i: int) -> ReserveRequest:
    return ReserveRequest(
        customer="acme", feature="chat", model="small", units={"input_tokens": 1000},
        idempotency_key=f"burst-{i}",
    )  # fmt: skip


async def _clients(store: RedisStore) -> int:
    return int((await store.client.info("clients"))["connected_clients"])


async def test_a_cold_burst_is_admitted_exactly_over_a_few_connections(
    store: RedisStore, service: Service, setup_customer: Setup, redis_url: str, clock: Clock
) -> None:
    # 1,000 calls at 0.00015 credits each; the budget fits exactly 400 of them.
    await setup_customer(grants={"paid": "1"}, budgets=[({}, "month", "0.06")])
    before = await _clients(store)
    fresh = RedisStore(redis_url, timeout_s=REDIS_TIMEOUT_S, connections=CONNECTIONS)
    try:
        await fresh.agree_layout()
        await fresh.warm()
        sidecar = Service(fresh, service.catalog, clock=clock)
        answers = await asyncio.gather(*(sidecar.reserve(_reserve(i)) for i in range(1000)))
        opened = await _clients(store) - before
    finally:
        await fresh.close()
    reasons = [a.reason for a in answers]
    assert reasons.count("ok") == 400
    assert reasons.count("budget_exceeded") == 600
    # On a cluster each node gets at most as many; this counts the one answering INFO.
    assert opened <= CONNECTIONS, opened


async def test_one_deadline_bounds_the_redis_work_of_a_request(
    proxy: FaultProxy, service: Service, setup_customer: Setup, clock: Clock
) -> None:
    await setup_customer(grants={"paid": "1"})
    slow = RedisStore(proxy.url, timeout_s=30, deadline_s=0.5)
    try:
        await slow.agree_layout()
        sidecar = Service(slow, service.catalog, clock=clock)
        assert (await sidecar.reserve(_reserve(1))).allowed  # the customer is cached now
        proxy.delay_s = 3.0  # every answer arrives 3 s late; each command would wait for it
        started = time.monotonic()
        late = await sidecar.reserve(_reserve(2))
        took = time.monotonic() - started
        assert late.reason == "store_unavailable"
        assert took < 2.5, took  # the deadline (0.5 s), with room for a busy machine
        proxy.delay_s = 0.0
    finally:
        await slow.close()
