"""End to end: calls through the sidecar, the streams, one ledger worker, PostgreSQL.

The ledger's totals per customer, team, agent and model equal the sum of what the sidecar
answered as committed, to the nano-credit; every movement is there exactly once.
"""

from __future__ import annotations

import random
from collections import Counter
from decimal import Decimal

import pytest

from sidecar.ledger.db import Pool
from sidecar.store.redis_store import RedisStore
from tests.conftest import Setup
from tests.ledger.conftest import Call, drain, worker

pytestmark = [pytest.mark.redis, pytest.mark.postgres]

NANO = Decimal("0.000000001")


def nanos(credits: str | None) -> int:
    return int(Decimal(credits or "0") / NANO)


async def test_totals_per_customer_team_agent_model_equal_committed_costs(
    store: RedisStore, pool: Pool, setup_customer: Setup, call: Call
) -> None:
    rng = random.Random(7)
    for customer in ("acme", "globex", "initech"):
        await setup_customer(customer, grants={"paid": "50"})
    expected: dict[str, Counter[str]] = {
        d: Counter() for d in ("customer", "team", "agent", "model")
    }
    commits = 0
    for _ in range(120):
        customer = rng.choice(["acme", "globex", "initech"])
        team = rng.choice(["eng", "sales", "support"])
        agent = rng.choice(["researcher", "writer", "triage"])
        model = rng.choice(["small", "big"])
        units = {"input_tokens": rng.randint(1, 5000), "output_tokens": rng.randint(0, 900)}
        done = await call(customer, units=units, model=model, team=team, agent=agent, user="u-1")
        cost = nanos(done.cost)
        for dimension, value in (("customer", customer), ("team", f"{customer}/{team}"),
                                 ("agent", f"{customer}/{agent}"), ("model", model)):  # fmt: skip
            expected[dimension][value] += cost
        commits += 1
    # One more with a cost that needs the carry: 3 requests at 0.4 nano-credit each.
    done = await call("acme", units={"requests": 3}, feature="steps", model="tiny", team="eng")
    for dimension, value in (("customer", "acme"), ("team", "acme/eng"), ("model", "tiny")):
        expected[dimension][value] += nanos(done.cost)
    commits += 1

    ledger = worker(store, pool)
    stored = await drain(ledger)

    entries = sum(
        [
            await store.client.xlen(s)
            for s in {store.layout.stream_of(c) for c in expected["customer"]}
        ]
    )
    assert stored == entries  # every stream entry stored once: customers, grants, debits
    async with pool.acquire() as db:
        assert await db.fetchval("SELECT count(*) FROM usage_events") == commits
        assert await db.fetchval("SELECT count(*) FROM unparsed_events") == 0
        for dimension, sql in (
            ("customer", "SELECT customer AS k, sum(cost_nanos) AS v FROM usage_events GROUP BY 1"),
            ("team", "SELECT customer || '/' || team AS k, sum(cost_nanos) AS v "
                     "FROM usage_events GROUP BY 1"),
            ("agent", "SELECT customer || '/' || agent AS k, sum(cost_nanos) AS v "
                      "FROM usage_events WHERE agent IS NOT NULL GROUP BY 1"),
            ("model", "SELECT model AS k, sum(cost_nanos) AS v FROM usage_events GROUP BY 1"),
        ):  # fmt: skip
            got = {row["k"]: int(row["v"]) for row in await db.fetch(sql)}
            assert got == dict(expected[dimension]), dimension
        # Every nano-credit charged left a bucket: debits in ledger_entries match the costs.
        debited = await db.fetchval(
            "SELECT -sum(amount_nanos) FROM ledger_entries WHERE kind = 'debit'"
        )
        assert int(debited) == sum(expected["customer"].values())


async def test_every_kind_of_movement_is_recorded_with_its_attribution(
    store: RedisStore, pool: Pool, setup_customer: Setup, call: Call
) -> None:
    await setup_customer(grants={"paid": "1"}, budgets=[({"team": "eng"}, "month", "3")])
    done = await call(
        units={"input_tokens": 1180, "output_tokens": 312},
        worst={"input_tokens": 2000, "output_tokens": 800},
        team="eng", user="u-17", agent="researcher", session="run-8841",
    )  # fmt: skip
    await drain(worker(store, pool))
    async with pool.acquire() as db:
        usage = await db.fetchrow("SELECT * FROM usage_events")
        grants = await db.fetch("SELECT reason, credit_type, amount_nanos FROM credit_grants")
        budget = await db.fetchrow("SELECT scope, period, limit_nanos, mode FROM budget_changes")
        plan = await db.fetchval("SELECT plan FROM customer_changes")
        kinds = await db.fetch("SELECT kind, credit_type, amount_nanos FROM ledger_entries")
    assert (usage["customer"], usage["team"], usage["user_id"], usage["agent"]) == (
        "acme", "eng", "u-17", "researcher"
    )  # fmt: skip
    assert (usage["session"], usage["feature"], usage["model"]) == ("run-8841", "chat", "small")
    assert usage["cost_nanos"] == 1180 * 1000 + 312 * 4000 == nanos(done.cost)
    assert usage["units"] == '{"input_tokens": 1180, "output_tokens": 312}'
    assert usage["event_id"].startswith("r_")
    assert usage["request_id"] == "req-0"
    assert usage["catalog_version"]
    assert usage["carry_femtos"] == 0
    assert sorted((g["reason"], g["credit_type"], g["amount_nanos"]) for g in grants) == [
        ("admin", "paid", 10**9),
        ("plan", "promo", 10**9),
    ]
    assert tuple(budget) == ("team:eng", "month", 3 * 10**9, "hard")
    assert plan == "test"
    # The plan's promo credits burn first (priority 1).
    assert sorted(tuple(k) for k in kinds) == [
        ("debit", "promo", -2_428_000),
        ("grant", "paid", 10**9),
        ("grant", "promo", 10**9),
    ]


async def test_a_commit_above_its_hold_is_stored_as_overrun_not_as_overage(
    store: RedisStore, pool: Pool, setup_customer: Setup, call: Call
) -> None:
    await setup_customer(grants={"paid": "1"})
    done = await call(units={"input_tokens": 2000}, worst={"input_tokens": 500})
    assert nanos(done.overrun) == (2000 - 500) * 1000 == nanos(done.overage)  # deprecated alias
    assert nanos(done.uncovered) == 0
    await drain(worker(store, pool))
    async with pool.acquire() as db:
        usage = await db.fetchrow("SELECT overrun_nanos, uncovered_nanos FROM usage_events")
        overage = await db.fetchval("SELECT count(*) FROM ledger_entries WHERE kind = 'overage'")
    assert (usage["overrun_nanos"], usage["uncovered_nanos"]) == ((2000 - 500) * 1000, 0)
    assert overage == 0  # overage is what no credit covered, and credits covered it all
