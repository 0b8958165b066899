"""``GET /metrics`` after real traffic over both transports, scraped from the metrics listener:
every decision counted by reason, timed by operation and outcome, Redis round trips and Lua
errors, the customer cache and open holds, and no customer, user or session id as a label."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator

import aiohttp
import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from bench.faults import FaultProxy
from sidecar.embedded import EmbeddedRedis
from sidecar.errors import RequestError, StoreError
from sidecar.rpc.gen.creditgate.v1 import creditgate_pb2 as pb
from sidecar.server import Sidecar
from sidecar.service import Service
from sidecar.store.redis_store import RedisStore
from sidecar.wire import CheckRequest, CommitRequest, ReleaseRequest, ReserveRequest
from tests.rpc.conftest import Clients, StartSidecar, Stubs, seed

pytestmark = pytest.mark.redis

IDS = {"acme", "nobody", "eng", "u-17", "researcher", "run-8841"}
UNITS = {"input_tokens": 1000, "output_tokens": 200}


class Scrape:
    def __init__(self, text: str) -> None:
        self.samples = [s for f in text_string_to_metric_families(text) for s in f.samples]

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples called ``name`` whose labels include ``labels``."""
        return sum(
            sample.value
            for sample in self.samples
            if sample.name == name and labels.items() <= sample.labels.items()
        )

    def labelled(self) -> Iterator[Sample]:
        return (sample for sample in self.samples if sample.labels)


async def scrape(sidecar: Sidecar) -> Scrape:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{sidecar.metrics_port}/metrics") as response,
    ):
        assert response.status == 200
        assert response.content_type == "text/plain"
        return Scrape(await response.text())


@pytest.fixture
async def sidecar(start_sidecar: StartSidecar) -> Sidecar:
    return await start_sidecar(metrics_port=0)


def _reserve(
    key: str, customer: str = "acme", model: str = "gpt-4o-mini", ttl_ms: int = 60_000
) -> ReserveRequest:
    return ReserveRequest(
        customer=customer, team="eng", user="u-17", agent="researcher", session="run-8841",
        feature="chat", model=model, units=UNITS, idempotency_key=key, ttl_ms=ttl_ms,
    )  # fmt: skip


async def test_decisions_over_both_transports_are_counted_by_reason_and_timed(
    sidecar: Sidecar, clients: Clients
) -> None:
    await seed(clients.http, grants={"paid": "100"})
    before = await scrape(sidecar)
    held = []
    for n, client in enumerate((clients.http, clients.grpc)):
        allowed = await client.reserve(_reserve(f"ok-{n}"))
        assert allowed.allowed
        held.append(allowed.reservation_id or "")
        assert (await client.reserve(_reserve(f"u-{n}", customer="nobody"))).reason == (
            "unknown_customer"
        )
        assert (await client.reserve(_reserve(f"m-{n}", model="gpt-4o"))).allowed
        check = await client.check(CheckRequest(customer="acme", feature="sso"))
        assert check.reason == "feature_not_entitled"
        with pytest.raises(RequestError):
            await client.reserve(_reserve(f"bad-{n}", ttl_ms=0))
    await clients.http.commit(CommitRequest(reservation_id=held[0], units=UNITS))
    await clients.grpc.release(ReleaseRequest(reservation_id=held[1]))
    after = await scrape(sidecar)

    def moved(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    decisions = "creditgate_decisions_total"
    assert moved(decisions, operation="reserve", reason="ok") == 4
    assert moved(decisions, operation="reserve", reason="unknown_customer") == 2
    assert moved(decisions, operation="reserve", reason="invalid_request") == 2
    assert moved(decisions, operation="check", reason="feature_not_entitled") == 2
    assert moved(decisions, operation="commit", reason="committed") == 1
    assert moved(decisions, operation="release", reason="released") == 1
    timed = "creditgate_decision_seconds_count"
    assert moved(timed, operation="reserve", outcome="allowed") == 4
    assert moved(timed, operation="reserve", outcome="denied") == 2
    assert moved(timed, operation="reserve", outcome="invalid_request") == 2
    assert moved(timed, operation="check", outcome="denied") == 2
    assert moved(timed, operation="commit", outcome="settled") == 1
    assert moved("creditgate_redis_seconds_count", command="reserve") >= 4
    assert moved("creditgate_redis_seconds_count", command="commit") == 1
    assert moved("creditgate_redis_seconds_count", command="release") == 1
    # Every request that called Redis reports the share of its deadline it used.
    assert moved("creditgate_redis_deadline_used_ratio_count") >= 6
    # Two holds still open (the gpt-4o ones), the committed and released ones gone.
    assert after.value("creditgate_holds_open") == 2
    assert after.value("creditgate_customer_cache_hits_total") > 0
    assert after.value("creditgate_customer_cache_misses_total") > 0
    assert after.value("creditgate_catalog_info", version=sidecar.service.catalog.version) == 1


async def test_latency_buckets_resolve_tens_of_microseconds(
    sidecar: Sidecar, clients: Clients
) -> None:
    await clients.http.check(CheckRequest(customer="nobody", feature="chat"))
    bounds = {
        sample.labels["le"]
        for sample in (await scrape(sidecar)).samples
        if sample.name == "creditgate_decision_seconds_bucket"
    }
    assert {"1e-05", "2.5e-05", "5e-05", "0.0001", "0.001"} <= bounds


async def test_no_label_carries_a_customer_user_team_agent_or_session_id(
    sidecar: Sidecar, clients: Clients
) -> None:
    await seed(clients.http, grants={"paid": "100"})
    for n in range(3):
        await clients.grpc.reserve(_reserve(f"r-{n}"))
        await clients.http.reserve(_reserve(f"n-{n}", customer="nobody"))
    values = {
        value for sample in (await scrape(sidecar)).labelled() for value in sample.labels.values()
    }
    assert values, "the scrape has labelled samples"
    assert not values & IDS


async def test_a_lua_error_is_counted_by_script_and_redis_stays_up(sidecar: Sidecar) -> None:
    store = sidecar.store
    before = await scrape(sidecar)
    with pytest.raises(StoreError):  # a payload no operation sends: the script itself fails
        await store._run(store.scripts["reserve"], "acme", {"not": "a reserve"})
    after = await scrape(sidecar)
    errors = "creditgate_lua_errors_total"
    assert after.value(errors, script="reserve") - before.value(errors, script="reserve") == 1
    assert after.value("creditgate_redis_up") == 1


async def _until_it_pings(store: RedisStore) -> None:
    """A 50 ms timeout may pass on a busy machine: try until one ping gets through."""
    deadline = time.monotonic() + 30
    while True:
        try:
            await store.ping()
            return
        except StoreError:
            assert time.monotonic() < deadline, "Redis never answered again"
            await asyncio.sleep(0.01)  # the breaker's probe, on this loop, closes it


async def test_redis_down_and_up_are_a_gauge_and_one_log_line_each(
    redis_server: EmbeddedRedis, caplog: pytest.LogCaptureFixture
) -> None:
    proxy = await FaultProxy(redis_server.port).start()
    paused = RedisStore(proxy.url, timeout_s=0.05)
    caplog.set_level(logging.INFO, logger="sidecar.store.connection")
    try:
        await _until_it_pings(paused)
        proxy.stall(True)  # Redis answers nothing until the stall ends
        for _ in range(3):
            with pytest.raises(StoreError):
                await paused.ping()
        assert paused.metrics.registry.get_sample_value("creditgate_redis_up") == 0
        proxy.stall(False)
        proxy.drop()  # the connections with answers pending go; new ones are clean
        await _until_it_pings(paused)
        assert paused.metrics.registry.get_sample_value("creditgate_redis_up") == 1
    finally:
        await paused.close()
        await proxy.stop()
    messages = [record.getMessage() for record in caplog.records]
    assert sum(m.startswith("redis down") for m in messages) == 1
    assert messages.count("redis up again") == 1


async def test_a_second_service_on_the_same_store_takes_over_the_state_gauges(
    sidecar: Sidecar,
) -> None:
    replacement = Service(sidecar.store, sidecar.service.catalog)
    await replacement.reserve(_reserve("k", customer="nobody"))
    registry = sidecar.store.metrics.registry
    assert registry.get_sample_value("creditgate_customer_cache_misses_total") == 1


async def test_a_full_redis_is_down_not_a_lua_error(
    sidecar: Sidecar, store: RedisStore, clients: Clients
) -> None:
    """An OOM reply (maxmemory reached under noeviction) means Redis cannot serve: redis_up
    drops, the reserve is store_unavailable, and no Lua error is counted."""
    await seed(clients.http, grants={"paid": "100"})
    registry = sidecar.store.metrics.registry
    await store.client.config_set("maxmemory", "1")
    try:
        answer = await sidecar.service.reserve(_reserve("oom", customer="acme"))
        assert answer.reason == "store_unavailable"
        assert registry.get_sample_value("creditgate_redis_up") == 0
    finally:
        await store.client.config_set("maxmemory", "0")
    assert registry.get_sample_value("creditgate_lua_errors_total", {"script": "reserve"}) is None
    assert await sidecar.store.ping()
    assert registry.get_sample_value("creditgate_redis_up") == 1


async def test_every_refused_request_is_counted_by_transport_and_code(
    sidecar: Sidecar, clients: Clients, stubs: Stubs
) -> None:
    """Refusals before the service (undecodable body, a field proto3 cannot send) count too."""
    base = f"http://127.0.0.1:{sidecar.port}"
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{base}/v1/reserve", data=b"{not json") as response:
            assert response.status == 400
        async with session.post(f"{base}/v1/commit", json={"reservation_id": "r_nope"}) as answer:
            assert answer.status == 404
        admin = f"http://127.0.0.1:{sidecar.admin_port}/admin/v1/customers/acme"
        async with session.get(admin) as response:
            assert response.status == 401
    with pytest.raises(grpc.aio.AioRpcError):
        await stubs.public.Reserve(pb.ReserveRequest(customer="acme", feature="chat"), timeout=5)
    registry = sidecar.store.metrics.registry

    def refused(transport: str, code: str) -> float | None:
        labels = {"transport": transport, "code": code}
        return registry.get_sample_value("creditgate_request_errors_total", labels)

    assert refused("http", "invalid_request") == 1
    assert refused("http", "not_found") == 1
    assert refused("http", "unauthenticated") == 1
    assert refused("grpc", "invalid_request") == 1
