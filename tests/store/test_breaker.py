"""The circuit breaker: while Redis does not answer, calls stop waiting on it (a denial costs
no deadline) and a probe in the background closes the breaker when Redis is back."""

from __future__ import annotations

import asyncio
import time

import pytest

from bench.faults import FaultProxy
from sidecar.service import Service
from sidecar.store.breaker import Breaker
from sidecar.store.redis_store import RedisStore
from sidecar.wire import ReserveRequest
from tests.conftest import Clock, Setup

DEADLINE_S = 3.0
"""Long, so that a call that waited for it is unmistakable from one the breaker answered."""


def test_it_opens_after_failures_close_together_and_probes_at_growing_intervals() -> None:
    breaker = Breaker(failures=3, window_s=1.0, first_s=0.1, longest_s=0.4)
    assert not breaker.failed(0.0)
    assert not breaker.failed(2.0)  # the first is out of the window by now
    assert not breaker.failed(2.5)
    assert breaker.failed(2.9)  # three within a second: open
    assert breaker.open
    assert [breaker.probe_in() for _ in range(4)] == [0.1, 0.2, 0.4, 0.4]
    breaker.closed()
    assert not breaker.open
    assert not breaker.failed(3.0)  # counting starts afresh


def _reserve(key: str) -> ReserveRequest:
    return ReserveRequest(
        customer="acme", feature="chat", model="small", units={"input_tokens": 1000},
        idempotency_key=key,
    )  # fmt: skip


@pytest.mark.redis
async def test_while_redis_is_silent_denials_are_immediate_and_it_recovers_alone(
    proxy: FaultProxy, service: Service, setup_customer: Setup, clock: Clock
) -> None:
    await setup_customer(grants={"paid": "1"})
    store = RedisStore(proxy.url, timeout_s=DEADLINE_S, deadline_s=DEADLINE_S)
    try:
        await store.agree_layout()
        sidecar = Service(store, service.catalog, clock=clock)
        assert (await sidecar.reserve(_reserve("warm"))).allowed
        proxy.stall(True)
        tripping = await asyncio.gather(*(sidecar.reserve(_reserve(f"t-{i}")) for i in range(3)))
        assert {a.reason for a in tripping} == {"store_unavailable"}  # each waited its deadline
        assert store.breaker.open
        started = time.monotonic()
        fast = await sidecar.reserve(_reserve("fast"))
        assert fast.reason == "store_unavailable"
        assert time.monotonic() - started < DEADLINE_S / 2  # answered without waiting on Redis

        proxy.stall(False)
        proxy.drop()
        async with asyncio.timeout(30):  # the probe closes the breaker; only a bug takes 30 s
            while store.breaker.open:
                await asyncio.sleep(0.05)
        assert (await sidecar.reserve(_reserve("back"))).allowed
        await sidecar.close()
    finally:
        await store.close()
