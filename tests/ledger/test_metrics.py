"""The ledger's metrics: stream length, undelivered entries and lag while events wait, events
ingested and batch latency once stored; served with probes on the metrics listener."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bench.faults import FaultProxy
from sidecar.ledger.db import Pool
from sidecar.ledger.metrics import LedgerMetrics
from sidecar.ledger.server import Ledger
from sidecar.ledger.settings import LedgerSettings
from sidecar.ledger.streams import StreamReader
from sidecar.store.redis_store import RedisStore
from tests.conftest import Setup
from tests.ledger.conftest import CATALOG, Call, drain, worker

pytestmark = [pytest.mark.redis, pytest.mark.postgres]


async def _appended(store: RedisStore) -> int:
    return sum(
        [
            await store.client.xlen(s)
            for s in {store.layout.stream_of(c) for c in ("acme", "globex")}
        ]
    )


def _in_5_s() -> int:
    """Five seconds from now in stream time (entry ids carry the server's clock)."""
    return time.time_ns() // 1_000_000 + 5000


def _value(metrics: LedgerMetrics, name: str) -> float | None:
    return metrics.registry.get_sample_value(name)


async def test_lag_while_events_wait_then_ingested_and_caught_up(
    store: RedisStore, pool: Pool, setup_customer: Setup, call: Call
) -> None:
    await setup_customer(grants={"paid": "10"})
    for tokens in (1000, 2000, 3000):
        await call(units={"input_tokens": tokens}, team="eng")
    appended = await _appended(store)
    metrics = LedgerMetrics()
    reader = StreamReader(store.client, store.layout, group="ledger", consumer="observer")
    now_ms = _in_5_s()
    metrics.lag(await reader.lag(), now_ms)
    assert _value(metrics, "creditgate_ledger_stream_entries") == appended
    assert _value(metrics, "creditgate_ledger_undelivered_entries") == appended
    # The age of the oldest entry waiting, however long the calls above took to make.
    firsts = [
        await store.client.xrange(stream, count=1)
        for stream in {store.layout.stream_of(c) for c in ("acme", "globex")}
    ]
    oldest_ms = min(int(first[0][0].split(b"-")[0]) for first in firsts if first)
    lag = _value(metrics, "creditgate_ledger_lag_seconds")
    assert lag == pytest.approx((now_ms - oldest_ms) / 1000, abs=0.001)
    assert lag is not None
    assert lag >= 5.0

    stored = await drain(worker(store, pool, metrics=metrics))
    assert stored == appended
    assert _value(metrics, "creditgate_ledger_events_ingested_total") == appended
    assert (_value(metrics, "creditgate_ledger_batch_seconds_count") or 0) >= 1
    metrics.lag(await reader.lag(), _in_5_s())
    assert _value(metrics, "creditgate_ledger_undelivered_entries") == 0
    assert _value(metrics, "creditgate_ledger_pending_entries") == 0
    assert _value(metrics, "creditgate_ledger_lag_seconds") == 0
    assert _value(metrics, "creditgate_ledger_stream_entries") == appended  # not trimmed


@pytest.fixture
async def ledger(redis_url: str, database: str, store: RedisStore) -> AsyncIterator[Ledger]:
    settings = LedgerSettings(
        catalog=str(CATALOG), redis=redis_url, database_url=database, metrics_port=0,
        poll_ms=10, trim=False, lag_refresh_ms=20,
    )  # fmt: skip
    ledger = Ledger(settings)
    await ledger.start()
    yield ledger
    await ledger.stop()


async def test_the_metrics_listener_serves_probes_and_a_scrape_after_ingest(
    ledger: Ledger, store: RedisStore, setup_customer: Setup, call: Call
) -> None:
    assert ledger.port is None  # no token: no query API, but metrics and probes
    await setup_customer(grants={"paid": "10"})
    await call(units={"input_tokens": 1000}, team="eng")
    appended = await _appended(store)
    async with aiohttp.ClientSession(f"http://127.0.0.1:{ledger.metrics_port}") as http:
        async with http.get("/readyz") as response:
            assert response.status == 200
            assert (await response.json())["catalog_version"] == ledger.catalog.version
        caught_up = {
            "creditgate_ledger_stream_entries": appended,
            "creditgate_ledger_events_ingested_total": appended,
            "creditgate_ledger_undelivered_entries": 0,
            "creditgate_ledger_pending_entries": 0,
            "creditgate_ledger_lag_seconds": 0,
        }
        # Delivered, stored, acknowledged and a lag read taken after all three: each is its own
        # step in the worker, so one scrape can fall between them; wait for the whole picture.
        seen: dict[str, float | None] = {}
        try:
            async with asyncio.timeout(30):
                while seen != caught_up:
                    async with http.get("/metrics") as response:
                        assert response.status == 200
                        samples = _samples(await response.text())
                    seen = {name: samples.get(name) for name in caught_up}
                    await asyncio.sleep(0.02)
        except TimeoutError:
            pytest.fail(f"the ledger never caught up: last scrape {seen}, expected {caught_up}")


async def test_a_lag_refresh_redis_does_not_answer_keeps_the_last_figures(
    proxy: FaultProxy, database: str, store: RedisStore, setup_customer: Setup, call: Call
) -> None:
    await setup_customer(grants={"paid": "10"})
    await call(units={"input_tokens": 1000}, team="eng")
    settings = LedgerSettings(
        catalog=str(CATALOG), redis=proxy.url, database_url=database, metrics_port=None,
        poll_ms=10, trim=False, lag_refresh_ms=60_000,
    )  # fmt: skip
    ledger = Ledger(settings)
    await ledger.start()
    try:
        await ledger.refresh_lag()
        registry = ledger.metrics.registry
        before = registry.get_sample_value("creditgate_ledger_stream_entries")
        assert before == await _appended(store)
        proxy.stall(True)  # Redis's replies are held until the stall ends: it does not answer
        await ledger.refresh_lag(timeout_s=0.05)
        assert registry.get_sample_value("creditgate_ledger_lag_refresh_errors_total") >= 1
        assert registry.get_sample_value("creditgate_ledger_stream_entries") == before
    finally:
        proxy.stall(False)
        await ledger.stop()


def _samples(text: str) -> dict[str, float]:
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
