"""Cost of serve and margin: every call records what serving it cost us (the catalog's model
costs), and the ledger's usage, invoice and export report cost of serve, revenue and margin
exactly, against a Decimal reference computed from the catalog's own strings; a margin under
the plan's floor alerts the operator."""

from __future__ import annotations

import asyncio
import random
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from sidecar.ledger import queries, webhooks
from sidecar.ledger.db import Pool, load_catalogs
from sidecar.ledger.margins import check_margins
from sidecar.ledger.metrics import LedgerMetrics
from sidecar.ledger.wire import month_range
from sidecar.service import Service
from sidecar.store.redis_store import RedisStore
from tests.conftest import Clock, Setup
from tests.governance.test_alerts_webhooks import _receiver
from tests.ledger.conftest import CATALOG, Call, drain, worker

pytestmark = [pytest.mark.redis, pytest.mark.postgres]

MILLION = Decimal(1_000_000)


def _per_unit(table: dict[str, str]) -> dict[str, Decimal]:
    return {kind: Decimal(text) / MILLION for kind, text in table.items()}


def _femtos(credits: Decimal) -> str:
    """As the ledger writes femto-credits: every digit, at least 9 decimals."""
    text = f"{credits:.15f}".rstrip("0")
    whole, _, fraction = text.partition(".")
    return f"{whole}.{fraction.ljust(9, '0')}"


async def test_cost_revenue_and_margin_per_model_equal_a_decimal_reference(
    store: RedisStore, pool: Pool, call: Call, setup_customer: Setup
) -> None:
    await setup_customer(grants={"paid": "100"})
    models = yaml.safe_load(Path(CATALOG).read_text())["models"]
    prices = {m: _per_unit(models[m]["prices_per_million"]) for m in ("small", "big")}
    costs = {m: _per_unit(models[m]["costs_per_million"]) for m in ("small", "big")}
    rng = random.Random(19)
    calls = [
        (rng.choice(["small", "big"]), {"input_tokens": rng.randint(1, 5000),
                                        "output_tokens": rng.randint(0, 3000)})
        for _ in range(40)
    ]  # fmt: skip
    for model, units in calls:
        await call(units=units, model=model)
    await drain(worker(store, pool))

    reference: dict[str, dict[str, Decimal]] = {}
    for model, units in calls:
        row = reference.setdefault(model, {"revenue": Decimal(0), "serve": Decimal(0)})
        row["revenue"] += sum(prices[model][k] * n for k, n in units.items())
        row["serve"] += sum(costs[model][k] * n for k, n in units.items())
    start, end = month_range("2026-11")
    async with pool.acquire() as db:
        usage = await queries.usage(db, "acme", start, end, ["model"], None)
        invoice = await queries.invoice(db, "acme", start, end, await load_catalogs(db))
        exported = [row async for row in queries.export_rows(db, start, end, "acme")]

    # These prices are whole nano-credits per token: revenue is exact, no carry involved.
    got = {r.group["model"]: (r.cost, r.serve_cost, r.margin) for r in usage.rows}
    want = {
        m: (f"{r['revenue']:.9f}", _femtos(r["serve"]), _femtos(r["revenue"] - r["serve"]))
        for m, r in reference.items()
    }
    assert got == want
    lines = {ln.model: (ln.amount, ln.serve_cost, ln.margin) for ln in invoice.lines}
    assert lines == want
    revenue = sum(r["revenue"] for r in reference.values())
    serve = sum(r["serve"] for r in reference.values())
    assert (usage.serve_cost, usage.margin) == (_femtos(serve), _femtos(revenue - serve))
    assert (invoice.serve_cost, invoice.margin) == (_femtos(serve), _femtos(revenue - serve))
    assert sum(Decimal(row["serve_cost"]) for row in exported) == serve
    for row, (model, units) in zip(exported, calls, strict=True):
        assert Decimal(row["serve_cost"]) == sum(costs[model][k] * n for k, n in units.items())


async def test_a_model_without_costs_costs_nothing_to_serve(
    store: RedisStore, pool: Pool, call: Call, setup_customer: Setup
) -> None:
    await setup_customer()
    await call(units={"tickets_resolved": 2}, feature="tickets", model=None)
    await drain(worker(store, pool))
    start, end = month_range("2026-11")
    async with pool.acquire() as db:
        usage = await queries.usage(db, "acme", start, end, [], None)
    (row,) = usage.rows
    assert (row.cost, row.serve_cost, row.margin) == ("1.000000000", "0.000000000", "1.000000000")


async def test_a_margin_below_the_plans_floor_alerts_the_operator_once_a_month(
    store: RedisStore, pool: Pool, call: Call, setup_customer: Setup, service: Service,
    clock: Clock,
) -> None:  # fmt: skip
    """Plan ``test`` has a 50% floor. acme serves small (a 99.96% margin), globex serves big
    (under 50%), and the plan as a whole is under it too: two alerts, to the operator's
    endpoint only, each once, with exact figures."""
    await setup_customer(grants={"paid": "50"})
    await setup_customer("globex", grants={"paid": "50"})
    await call(units={"input_tokens": 1000})  # acme: 0.001 revenue, 0.0000004 cost
    for _ in range(3):
        await call("globex", units={"input_tokens": 2000, "output_tokens": 100}, model="big")
    await drain(worker(store, pool))
    async for receiver in _receiver(failures=0):
        async with pool.acquire() as db:
            operator = await webhooks.register(db, None, receiver.url, None, "operator")
            await webhooks.register(db, "globex", receiver.url, None, "operator")
            receiver.secret = operator.secret or ""
            assert await check_margins(db, service.catalog, clock()) == 2
            assert await check_margins(db, service.catalog, clock()) == 0  # once a month
        stop = asyncio.Event()
        dispatcher = webhooks.Dispatcher(pool, LedgerMetrics(), poll_s=0.01)
        task = asyncio.create_task(dispatcher.run(stop))
        async with asyncio.timeout(30):
            while len(receiver.verified) < 2:
                await asyncio.sleep(0.02)
        stop.set()
        await task
        assert sum(receiver.tries.values()) == 2  # none to globex's own endpoint
        got = {m["data"]["customer"] or m["data"]["plan"]: m for m in receiver.verified.values()}

    revenue = {"globex": 3 * (2000 * Decimal(10) + 100 * Decimal(30)) / 10**6}
    serve = {"globex": 3 * (2000 * Decimal("6.25") + 100 * Decimal("24.999999999")) / 10**6}
    revenue["test"] = revenue["globex"] + Decimal("0.001")
    serve["test"] = serve["globex"] + 1000 * Decimal("0.0004") / 10**6
    nano = Decimal("0.000000001")
    for subject in ("globex", "test"):
        message = got[subject]
        assert message["type"] == "alert.margin_below"
        data = message["data"]
        margin = (revenue[subject] - serve[subject]).quantize(nano, rounding="ROUND_FLOOR")
        assert Decimal(data["revenue"]) == revenue[subject]
        assert Decimal(data["margin"]) == margin
        assert Decimal(data["threshold"]) == (revenue[subject] / 2).quantize(nano)
        assert data["floor"] == "50%"
        assert margin < revenue[subject] / 2
    start, end = month_range("2026-11")
    async with pool.acquire() as db:
        seen = await queries.alerts(db, "globex", start, end)
    assert seen.alerts == []  # the customer's own view never shows margin alerts
