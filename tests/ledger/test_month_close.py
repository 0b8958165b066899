"""Closing a month: it rolls what a recurring grant has left into a bucket of its own, capped
and with its own expiry, and grants back volume rebates; once however often it runs; each is a
grant in the ledger, and the invoice preview shows the rebate."""

from __future__ import annotations

from decimal import Decimal

import pytest

from sidecar.catalog import Catalog
from sidecar.ledger import queries
from sidecar.ledger.close import grant_rebates, roll_over
from sidecar.ledger.db import Pool, load_catalogs
from sidecar.ledger.wire import month_range
from sidecar.service import Service
from sidecar.store.redis_store import RedisStore
from sidecar.wire import UpsertCustomerRequest
from tests.conftest import Clock, Setup
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


async def test_a_months_volume_is_rebated_at_the_tier_it_reached_once(
    store: RedisStore, pool: Pool, service: Service, clock: Clock, call: Call,
    setup_customer: Setup, ledger_catalog: Catalog,
) -> None:  # fmt: skip
    for customer, calls in (("acme", 2), ("globex", 1)):
        await setup_customer(customer, grants={"paid": "100"})
        for _ in range(calls):  # 600,000 input tokens of big: 6 credits at the list price
            done = await call(customer, units={"input_tokens": 600_000}, model="big")
            assert done.cost == "6.000000000"  # burned at the list price during the month
    await drain(worker(store, pool))
    start, end = month_range("2026-11")
    clock.now_ms = end + HOUR_MS
    async with pool.acquire() as db:
        assert await grant_rebates(db, store, ledger_catalog, start, end, clock.now_ms) == 1
        assert await grant_rebates(db, store, ledger_catalog, start, end, clock.now_ms) == 0
    await drain(worker(store, pool, "w2"))
    async with pool.acquire() as db:
        rebates = await db.fetch(
            "SELECT customer, credit_type, amount_nanos, expires_at FROM credit_grants "
            "WHERE reason = 'rebate'"
        )
        catalogs = await load_catalogs(db)
        acme = await queries.invoice(db, "acme", start, end, catalogs, ledger_catalog)
        globex = await queries.invoice(db, "globex", start, end, catalogs, ledger_catalog)
    # acme: 1.2 M tokens reached the 1 M tier: all at 5 instead of 10 per million.
    reference = Decimal(1_200_000) * (Decimal(10) - Decimal(5)) / 10**6
    assert [(r["customer"], r["credit_type"], Decimal(r["amount_nanos"]) / 10**9,
             r["expires_at"]) for r in rebates] == [("acme", "paid", reference, None)]  # fmt: skip
    assert Decimal(acme.rebate) == reference
    assert Decimal(globex.rebate) == 0  # 0.6 M: below the tier
