"""Closing a month rolls what a recurring grant has left into a bucket of its own, capped and
with its own expiry, once however often it runs; the rollover is a grant in the ledger."""

from __future__ import annotations

from decimal import Decimal

import pytest

from sidecar.catalog import Catalog
from sidecar.ledger.close import roll_over
from sidecar.ledger.db import Pool
from sidecar.ledger.wire import month_range
from sidecar.service import Service
from sidecar.store.redis_store import RedisStore
from sidecar.wire import UpsertCustomerRequest
from tests.conftest import Clock
from tests.ledger.conftest import Call, drain, worker

pytestmark = [pytest.mark.redis, pytest.mark.postgres]

HOUR_MS = 3_600_000


async def test_a_months_leftover_rolls_over_capped_once_into_its_own_bucket(
    store: RedisStore, pool: Pool, service: Service, clock: Clock, call: Call,
    ledger_catalog: Catalog,
) -> None:  # fmt: skip
    for customer, spent in (("acme", 3), ("globex", 8)):  # of 10 promo credits
        await service.upsert_customer(customer, UpsertCustomerRequest(plan="rolling"))
        for _ in range(spent):
            await call(customer, units={"input_tokens": 1_000_000})  # 1 credit of small
    await drain(worker(store, pool))
    _, end = month_range("2026-11")
    clock.now_ms = end + HOUR_MS
    async with pool.acquire() as db:
        assert await roll_over(db, store, ledger_catalog, end, clock.now_ms) == 2
        assert await roll_over(db, store, ledger_catalog, end, clock.now_ms) == 0  # once
    await drain(worker(store, pool, "w2"))

    async with pool.acquire() as db:
        rolled = await db.fetch(
            "SELECT customer, credit_type, amount_nanos, expires_at, idempotency_key "
            "FROM credit_grants WHERE reason = 'rollover' ORDER BY customer"
        )
    assert [
        (r["customer"], r["credit_type"], Decimal(r["amount_nanos"]) / 10**9) for r in rolled
    ] == [
        ("acme", "promo", Decimal(4)),  # 7 left, capped at 4
        ("globex", "promo", Decimal(2)),  # 2 left
    ]
    assert {r["expires_at"].isoformat() for r in rolled} == {"2027-01-01T00:00:00+00:00"}
    assert all(r["idempotency_key"].startswith("rollover:g_") for r in rolled)

    # In the live balance: its own bucket, beside December's whole plan grant.
    buckets = (await service.balance("acme")).buckets
    assert sorted((b.credit_type, b.amount, b.expires_at) for b in buckets) == [
        ("promo", "10.000000000", "2027-01-01T00:00:00.000Z"),
        ("promo", "4.000000000", "2027-01-01T00:00:00.000Z"),
    ]
