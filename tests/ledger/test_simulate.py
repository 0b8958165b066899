"""``creditgate policy simulate``: the ledger's real calls of a window replayed under a
proposed catalog. Under the catalog in force it reproduces the recorded charges exactly
(sub-nano carry, graduated tiers counted on from before the window, a contract); doubling one
model's price doubles exactly that model's revenue; a tightened limit lists exactly the calls
it would have denied. The same input gives the same report."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec
import pytest
import yaml

from sidecar.catalog import Catalog, parse_catalog
from sidecar.catalog.spec import ContractSpec
from sidecar.ledger.db import Pool
from sidecar.ledger.simulate import simulate
from sidecar.service import Service
from sidecar.store.redis_store import RedisStore
from sidecar.wire import UpsertCustomerRequest
from tests.conftest import Clock, Setup
from tests.ledger.conftest import CATALOG, Call, drain, worker
from tests.ledger.test_cli import creditgate

pytestmark = [pytest.mark.redis, pytest.mark.postgres]

HOUR_MS = 3_600_000


def _edited(edit: Any) -> Catalog:
    data = yaml.safe_load(CATALOG.read_text())
    edit(data)
    return parse_catalog(yaml.safe_dump(data))


async def _history(
    store: RedisStore, pool: Pool, service: Service, clock: Clock, call: Call, setup: Setup
) -> tuple[int, int]:
    """Two calls before a window, 60 in it; the window."""
    await setup(grants={"paid": "50"})
    overrides = ContractSpec(prices_per_million={"small": {"output_tokens": "2"}})
    await service.upsert_customer("globex", UpsertCustomerRequest(plan="test", overrides=overrides))
    await call(units={"input_tokens": 900}, model="graded")  # before: the tier counter moves
    await call(units={"requests": 3}, feature="steps", model="tiny")  # carry 0.2 nano
    clock.advance(HOUR_MS)
    start = clock()
    for i in range(12):
        for customer in ("acme", "globex"):
            await call(customer, units={"input_tokens": 300 + i, "output_tokens": 7 * i})
        await call(units={"input_tokens": 150}, model="graded")  # crosses 1000 at the 1st
        await call(units={"requests": 1 + i % 3}, feature="steps", model="tiny")
        await call(units={"input_tokens": 10, "output_tokens": 10}, model="big")
        clock.advance(60_000)
    await drain(worker(store, pool))
    return start, clock() + 1


async def test_the_catalog_in_force_reproduces_the_recorded_charges_exactly(
    store: RedisStore, pool: Pool, service: Service, clock: Clock, call: Call,
    setup_customer: Setup,
) -> None:  # fmt: skip
    start, end = await _history(store, pool, service, clock, call, setup_customer)
    async with pool.acquire() as db:
        report = await simulate(db, service.catalog, start, end)
        again = await simulate(db, service.catalog, start, end)
        recorded = {
            r["customer"]: Decimal(r["cost"]) / 10**9
            for r in await db.fetch(
                "SELECT customer, sum(cost_nanos) AS cost FROM usage_events "
                "WHERE ts >= to_timestamp($1 / 1000.0) AND ts < to_timestamp($2 / 1000.0) "
                "GROUP BY customer",
                start, end,
            )
        }  # fmt: skip
    assert msgspec.json.encode(report) == msgspec.json.encode(again)  # deterministic
    assert report.totals.denied == 0
    assert report.totals.events == 12 * 5
    for customer, totals in report.customers.items():
        assert Decimal(totals.revenue_before) == recorded[customer]
        assert totals.revenue_after == totals.revenue_before, customer
        assert totals.margin_after == totals.margin_before
    for model, totals in report.models.items():
        assert totals.revenue_after == totals.revenue_before, model
    assert report.totals.revenue_after == report.totals.revenue_before
    assert report.priced_by == [service.catalog.version]


async def test_doubling_one_price_doubles_exactly_that_models_revenue(
    store: RedisStore, pool: Pool, service: Service, clock: Clock, call: Call,
    setup_customer: Setup,
) -> None:  # fmt: skip
    start, end = await _history(store, pool, service, clock, call, setup_customer)

    def double_big(data: dict[str, Any]) -> None:
        data["models"]["big"]["prices_per_million"] = {"input_tokens": "20", "output_tokens": "60"}

    async with pool.acquire() as db:
        report = await simulate(db, _edited(double_big), start, end)
    big = report.models["big"]
    assert Decimal(big.revenue_after) == 2 * Decimal(big.revenue_before) > 0
    for model, totals in report.models.items():
        if model != "big":
            assert totals.revenue_after == totals.revenue_before, model
    added = Decimal(report.totals.revenue_after) - Decimal(report.totals.revenue_before)
    assert added == Decimal(big.revenue_before)  # big's calls are whole nano-credits


async def test_a_tightened_limit_lists_exactly_the_calls_it_would_have_denied(
    store: RedisStore, pool: Pool, service: Service, clock: Clock, call: Call,
    setup_customer: Setup,
) -> None:  # fmt: skip
    start, end = await _history(store, pool, service, clock, call, setup_customer)
    async with pool.acquire() as db:
        rows = await db.fetch(
            "SELECT event_id, customer, units::text AS units FROM usage_events "
            "WHERE feature = 'chat' ORDER BY ts, stream_ms, stream_seq"
        )
    limit = 4000

    def tighten(data: dict[str, Any]) -> None:
        data["plans"]["test"]["features"]["chat"]["limit"] = limit

    # The reference, written out: per customer, in order, a call that would pass the month's
    # limit is denied and does not count; every call before the window counted.
    used: dict[str, int] = {}
    expected = []
    for row in rows:
        units = msgspec.json.decode(row["units"])
        counted = units.get("input_tokens", 0) + units.get("output_tokens", 0)
        in_window = row["event_id"] not in {r["event_id"] for r in rows[:2]}  # first 2: before
        if in_window and used.get(row["customer"], 0) + counted > limit:
            expected.append(row["event_id"])
            continue
        used[row["customer"]] = used.get(row["customer"], 0) + counted
    async with pool.acquire() as db:
        report = await simulate(db, _edited(tighten), start, end)
    assert expected  # the limit bites
    assert [d.event_id for d in report.denied] == expected
    assert {d.reason for d in report.denied} == {"quota_exceeded"}
    assert report.totals.denied == len(expected)
    assert Decimal(report.totals.revenue_after) < Decimal(report.totals.revenue_before)


async def test_the_cli_simulates_read_only_and_refuses_a_bad_window(
    store: RedisStore, pool: Pool, service: Service, clock: Clock, call: Call,
    setup_customer: Setup, database: str,
) -> None:  # fmt: skip
    await setup_customer(grants={"paid": "5"})
    await call(units={"input_tokens": 1000})
    await drain(worker(store, pool))
    args = ("policy", "simulate", str(CATALOG), "--database-url", database,
            "--from", "2026-01-01T00:00:00Z", "--to", "2030-01-01T00:00:00Z")  # fmt: skip
    code, out, err = await creditgate(*args, "--json")
    assert code == 0, err
    report = msgspec.json.decode(out)
    assert report["totals"]["events"] == 1
    assert report["totals"]["revenue_before"] == report["totals"]["revenue_after"] == "0.001000000"
    code, out, _ = await creditgate(*args)
    assert code == 0
    assert out.startswith(f"simulation of catalog {service.catalog.version}")
    code, _, err = await creditgate(*args[:-4], "--from", "2026-02-01T00:00:00Z", "--to",
                                    "2026-01-01T00:00:00Z")  # fmt: skip
    assert code == 2
    assert "--to: must be after from" in err
