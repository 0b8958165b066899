"""Cost of serve and margin: every call records what serving it cost us (the catalog's model
costs), and the ledger's usage, invoice and export report cost of serve, revenue and margin
exactly, against a Decimal reference computed from the catalog's own strings."""

from __future__ import annotations

import random
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from sidecar.ledger import queries
from sidecar.ledger.db import Pool, load_catalogs
from sidecar.ledger.wire import month_range
from sidecar.store.redis_store import RedisStore
from tests.conftest import Setup
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
