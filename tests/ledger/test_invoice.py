"""The invoice preview of a known month, against line items computed by hand.

Prices (tests/ledger/catalog.yaml): small 1 / 4 credits per million input / output tokens,
big 10 / 30, a resolved ticket 0.5 credit. acme (plan test) holds the plan's 1 promo credit
(burned first) and 10 paid credits; globex (plan overage, no credits) has a contract price of
2 credits per million output tokens on small.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest

from sidecar.catalog.spec import ContractSpec
from sidecar.ledger import queries
from sidecar.ledger.db import Pool, load_catalogs
from sidecar.ledger.wire import month_range
from sidecar.service import Service
from sidecar.store.redis_store import RedisStore
from sidecar.wire import GrantRequest, UpsertCustomerRequest
from tests.conftest import Clock, Setup
from tests.ledger.conftest import Call, drain, worker

pytestmark = [pytest.mark.redis, pytest.mark.postgres]

DAY_MS = 86_400_000


async def test_invoice_preview_matches_hand_computed_line_items(
    store: RedisStore, pool: Pool, service: Service, clock: Clock, call: Call, setup_customer: Setup
) -> None:
    await setup_customer(grants={"paid": "10"})
    await call(units={"input_tokens": 1000, "output_tokens": 500}, team="eng")  # 0.003
    await call(units={"input_tokens": 2000}, team="eng")  # 0.002
    await call(units={"input_tokens": 100, "output_tokens": 100}, model="big")  # 0.001 + 0.003
    await call(units={"tickets_resolved": 3}, feature="tickets", model=None)  # 1.5
    overrides = ContractSpec(prices_per_million={"small": {"output_tokens": "2"}})
    await service.upsert_customer(
        "globex", UpsertCustomerRequest(plan="overage", overrides=overrides)
    )
    await call("globex", units={"input_tokens": 1000, "output_tokens": 1000})  # 0.001 + 0.002
    clock.advance(12 * DAY_MS)  # December: not on November's invoice
    await call(units={"input_tokens": 7}, team="eng")
    await drain(worker(store, pool))

    start, end = month_range("2026-11")
    async with pool.acquire() as db:
        catalogs = await load_catalogs(db)
        acme = await queries.invoice(db, "acme", start, end, catalogs)
        globex = await queries.invoice(db, "globex", start, end, catalogs)

    assert msgspec.to_builtins(acme) == {
        "customer": "acme",
        "from": "2026-11-01T00:00:00.000Z",
        "to": "2026-12-01T00:00:00.000Z",
        "lines": [
            {"model": None, "feature": "tickets", "events": 1, "amount": "1.500000000", "units": [
                {"kind": "tickets_resolved", "quantity": 3, "unit_price": "0.500000000",
                 "amount": "1.500000000"},
            ], "serve_cost": "0.000000000", "margin": "1.500000000"},
            {"model": "big", "feature": "chat", "events": 1, "amount": "0.004000000", "units": [
                {"kind": "input_tokens", "quantity": 100, "unit_price": "0.000010000",
                 "amount": "0.001000000"},
                {"kind": "output_tokens", "quantity": 100, "unit_price": "0.000030000",
                 "amount": "0.003000000"},
            # served at 100 * 6.25 + 100 * 24.999999999 per million
            ], "serve_cost": "0.0031249999999", "margin": "0.0008750000001"},
            {"model": "small", "feature": "chat", "events": 2, "amount": "0.005000000", "units": [
                {"kind": "input_tokens", "quantity": 3000, "unit_price": "0.000001000",
                 "amount": "0.003000000"},
                {"kind": "output_tokens", "quantity": 500, "unit_price": "0.000004000",
                 "amount": "0.002000000"},
            # served at 3000 * 0.0004 + 500 * 0.0017 per million
            ], "serve_cost": "0.000002050", "margin": "0.004997950"},
        ],
        "subtotal": "1.509000000",
        # promo (priority 1) first: 0.009 for the chats, then 0.991 of the tickets; paid 0.509.
        "credits_applied": [
            {"credit_type": "paid", "amount": "0.509000000"},
            {"credit_type": "promo", "amount": "1.000000000"},
        ],
        "overage": "0.000000000",
        "catalog_versions": [service.catalog.version],
        "corrections": [],  # none were made (tests/governance/test_corrections.py)
        "corrected": "0.000000000",
        "fees": [], "discount": "0.000000000", "true_up": "0.000000000",
        "overage_refunded": "0.000000000", "amount_due": "0.000000000",
        "rebate": "0.000000000",
        "serve_cost": "0.0031270499999", "margin": "1.5058729500001",
    }  # fmt: skip
    assert msgspec.to_builtins(globex)["lines"] == [
        {"model": "small", "feature": "chat", "events": 1, "amount": "0.003000000", "units": [
            {"kind": "input_tokens", "quantity": 1000, "unit_price": "0.000001000",
             "amount": "0.001000000"},
            {"kind": "output_tokens", "quantity": 1000, "unit_price": "0.000002000",
             "amount": "0.002000000"},
        ], "serve_cost": "0.000002100", "margin": "0.002997900"},
    ]  # fmt: skip
    assert (globex.subtotal, globex.credits_applied, globex.overage) == (
        "0.003000000", [], "0.003000000"
    )  # fmt: skip


async def test_sub_nano_prices_are_listed_exactly_and_the_charge_carries(
    store: RedisStore, pool: Pool, call: Call, setup_customer: Setup
) -> None:
    await setup_customer()
    for _ in range(3):
        await call(units={"requests": 4}, feature="steps", model="tiny")  # 1.6 nano-credits
    await drain(worker(store, pool))
    start, end = month_range("2026-11")
    async with pool.acquire() as db:
        preview = await queries.invoice(db, "acme", start, end, await load_catalogs(db))
    (line,) = preview.lines
    (unit,) = line.units
    # 12 requests at 0.4 nano-credit are 4.8 exactly; charged 1, 2 and 1 (carry 0.6, 0.2, 0.8).
    assert (unit.quantity, unit.unit_price, unit.amount) == (12, "0.0000000004", "0.0000000048")
    assert line.amount == preview.subtotal == "0.000000004"


async def test_graduated_tiers_are_listed_tier_by_tier_and_add_up_to_what_was_charged(
    store: RedisStore, pool: Pool, call: Call, setup_customer: Setup
) -> None:
    await setup_customer(grants={"paid": "1"})
    charged = [await call(units={"input_tokens": 700}, model="graded") for _ in range(2)]
    await drain(worker(store, pool))
    start, end = month_range("2026-11")
    async with pool.acquire() as db:
        preview = await queries.invoice(db, "acme", start, end, await load_catalogs(db))
    (line,) = preview.lines
    # 1400 tokens: the first 1000 at 2 per million, 400 at 1: 0.0024 credits.
    assert [(u.kind, u.quantity, u.unit_price, u.amount) for u in line.units] == [
        ("input_tokens", 400, "0.000001000", "0.000400000"),
        ("input_tokens", 1000, "0.000002000", "0.002000000"),
    ]
    assert [c.cost for c in charged] == ["0.001400000", "0.001000000"]
    assert line.amount == preview.subtotal == "0.002400000"


async def test_fees_discount_and_commitment_settle_a_month_with_an_upgrade_and_a_downgrade(
    store: RedisStore, pool: Pool, service: Service, clock: Clock, call: Call
) -> None:
    """initech: on starter (30 a month) from Nov 19 noon, upgraded to scale (90) on Nov 24 noon,
    downgraded to starter on Nov 27 noon, with a contract of 10% off and a 100-credit monthly
    commitment."""
    contract = ContractSpec(discount_percent=10, minimum="100")
    await service.upsert_customer(
        "initech", UpsertCustomerRequest(plan="starter", overrides=contract)
    )
    await service.grant(
        "initech", GrantRequest(credit_type="paid", amount="100", idempotency_key="g")
    )
    first = await call("initech", units={"input_tokens": 1_000_000})  # listed 1, charged 0.9
    assert first.cost == "0.900000000"  # the discount is applied where the call is priced
    clock.advance(5 * DAY_MS)
    await service.upsert_customer(
        "initech", UpsertCustomerRequest(plan="scale", overrides=contract)
    )
    # The change's allowance: 30 promo credits for the 6.5 days left of November's 30.
    promo = [b for b in (await service.balance("initech")).buckets if b.credit_type == "promo"]
    assert [(Decimal(b.amount), b.expires_at) for b in promo] == [
        (Decimal(30) * Decimal("6.5") / 30, "2026-12-01T00:00:00.000Z")
    ]
    second = await call("initech", units={"output_tokens": 2_000_000})  # listed 8, charged 7.2
    assert second.cost == "7.200000000"
    clock.advance(3 * DAY_MS)
    await service.upsert_customer(
        "initech", UpsertCustomerRequest(plan="starter", overrides=contract)
    )
    # The downgrade grants nothing: starter has no allowance (and scale's 6.5 are spent).
    promo = [b for b in (await service.balance("initech")).buckets if b.credit_type == "promo"]
    assert promo == []
    third = await call("initech", units={"input_tokens": 1_000_000})
    assert third.cost == "0.900000000"
    await drain(worker(store, pool))

    start, end = month_range("2026-11")
    async with pool.acquire() as db:
        catalogs = await load_catalogs(db)
        current = catalogs[service.catalog.version]
        bill = await queries.invoice(db, "initech", start, end, catalogs, current)
        december = await queries.invoice(db, "initech", *month_range("2026-12"), catalogs, current)

    month = Decimal(30)  # days in November
    starter = Decimal(30) * 5 / month  # Nov 19 12:00 to Nov 24 12:00
    scale = Decimal(90) * 3 / month  # to Nov 27 12:00
    back = Decimal(30) * Decimal("3.5") / month  # to Dec 1 00:00
    subtotal = Decimal("0.9") + Decimal("7.2") + Decimal("0.9")
    true_up = Decimal(100) - subtotal
    assert [(f.plan, f.start, f.end, Decimal(f.amount)) for f in bill.fees] == [
        ("starter", "2026-11-19T12:00:00.000Z", "2026-11-24T12:00:00.000Z", starter),
        ("scale", "2026-11-24T12:00:00.000Z", "2026-11-27T12:00:00.000Z", scale),
        ("starter", "2026-11-27T12:00:00.000Z", "2026-12-01T00:00:00.000Z", back),
    ]
    assert Decimal(bill.subtotal) == subtotal
    assert Decimal(bill.discount) == Decimal(1 + 8 + 1) - subtotal
    assert Decimal(bill.true_up) == true_up
    assert Decimal(bill.overage) == 0
    # Promo first (the prorated 6.5), then paid: 0.9 + 0.7 + 0.9.
    assert [(c.credit_type, Decimal(c.amount)) for c in bill.credits_applied] == [
        ("paid", Decimal("2.5")), ("promo", Decimal("6.5"))
    ]  # fmt: skip
    assert Decimal(bill.amount_due) == starter + scale + back + true_up
    # December: the whole month on starter, no usage: the fee and the whole commitment.
    assert [(f.plan, Decimal(f.amount)) for f in december.fees] == [("starter", Decimal(30))]
    assert Decimal(december.true_up) == 100
