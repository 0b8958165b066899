"""Invariant 1 over HTTP: 300 concurrent reserves on many connections admit exactly what fits,
held + settled never passes a cap while they race, and the final state is exact."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from sidecar.store.redis_store import RedisStore
from tests.http.conftest import CATALOG, EVENTS, Api, cost, credits, floor_nano

pytestmark = pytest.mark.redis

CALLS = 300
USERS = 10  # 30 reserves per user, far under pro's 120 per user per minute
INCLUDED = Decimal(CATALOG["plans"]["pro"]["grants"][0]["amount"])
MODEL = "gpt-4o-mini"
WORST = {"input_tokens": 1200, "output_tokens": 800}


def _reserve(i: int, case: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "customer": "acme",
        "team": "eng",
        "user": f"u-{i % USERS}",
        "feature": "chat",
        "idempotency_key": f"{case}-{i}",
    }
    if case == "balance":
        body["amount"] = "0.1"
    else:
        body |= {"model": MODEL, "units": WORST}
    return body


async def _watch(api: Api, done: asyncio.Event) -> int:
    """Read the balance over HTTP while the race runs; every reading must respect the caps."""
    readings = 0
    async with aiohttp.ClientSession() as http:
        while not done.is_set():
            async with http.get(f"{api.base}/v1/balance?customer=acme") as response:
                state = await response.json()
            buckets = sum(Decimal(bucket["amount"]) for bucket in state["buckets"])
            # Buckets are read before holds, and holds never outgrow what the buckets had.
            assert Decimal(state["held"]) <= buckets
            assert Decimal(state["balance"]) >= 0
            for row in state["budgets"]:
                # used and held come from one HMGET: an atomic reading.
                assert Decimal(row["used"]) + Decimal(row["held"]) <= Decimal(row["limit"])
            readings += 1
    return readings


@pytest.mark.parametrize(
    ("case", "paid", "budget", "hold", "reason", "scope"),
    [
        # 20 included + 1.05 paid credits, 0.1 credits per reserve: 210 fit.
        pytest.param(
            "balance", Decimal("1.05"), None, Decimal("0.1"), "insufficient_credits", "balance",
            id="balance-binds",
        ),
        # A customer month budget of 0.1 credits, gpt-4o-mini worst case per reserve: 151 fit.
        pytest.param(
            "budget", Decimal(5), Decimal("0.1"), cost(MODEL, WORST), "budget_exceeded",
            "customer/month", id="budget-binds",
        ),
    ],
)  # fmt: skip
async def test_300_concurrent_reserves_admit_exactly_what_fits(
    api: Api,
    store: RedisStore,
    case: str,
    paid: Decimal,
    budget: Decimal | None,
    hold: Decimal,
    reason: str,
    scope: str,
) -> None:
    await api.seed(
        grants={"paid": str(paid)}, budgets=[] if budget is None else [{"limit": str(budget)}]
    )
    cap = INCLUDED + paid if budget is None else budget
    fits = int(cap // hold)
    assert 0 < fits < CALLS
    events = await store.client.xlen(EVENTS)

    done = asyncio.Event()
    watcher = asyncio.create_task(_watch(api, done))
    answers = await asyncio.gather(
        *(api.post("/v1/reserve", _reserve(i, case)) for i in range(CALLS))
    )

    assert all(answer.status == 200 for answer in answers)
    outcomes = Counter((a.body["allowed"], a.body["reason"], a.body["scope"]) for a in answers)
    assert outcomes == {(True, "ok", None): fits, (False, reason, scope): CALLS - fits}
    admitted = [a.body for a in answers if a.body["allowed"]]
    assert all(a["held"] == credits(hold) for a in admitted)
    assert len({a["reservation_id"] for a in admitted}) == fits

    state = await api.ok("/v1/balance?customer=acme")
    assert Decimal(state["held"]) == fits * hold <= cap
    assert Decimal(state["balance"]) == INCLUDED + paid - fits * hold

    # Commit every admitted call at a random actual cost within its hold, all at once.
    rng = random.Random(f"http-{case}")
    commits: list[dict[str, Any]] = []
    actual = Decimal(0)
    for answer in admitted:
        if case == "balance":
            amount = Decimal(rng.randint(0, 10**8)) / 10**9  # 0 to 0.1, nine digits
            commits.append({"reservation_id": answer["reservation_id"], "amount": credits(amount)})
            actual += amount
        else:
            units = {"input_tokens": rng.randint(0, 1200), "output_tokens": rng.randint(0, 800)}
            commits.append({"reservation_id": answer["reservation_id"], "units": units})
            actual += cost(MODEL, units)
    results = await asyncio.gather(*(api.post("/v1/commit", body) for body in commits))
    done.set()
    readings = await watcher
    assert readings > 0, readings

    assert all(r.status == 200 and r.body["result"] == "committed" for r in results)
    assert all(r.body["overrun"] == r.body["overage"] == credits(0) for r in results)
    charged = floor_nano(actual)  # the carried remainder rounds the run down, once
    assert sum(Decimal(r.body["cost"]) for r in results) == charged
    assert sum(Decimal(r.body["released"]) for r in results) == fits * hold - charged

    final = await api.ok("/v1/balance?customer=acme")
    assert final["held"] == credits(0)
    assert final["balance"] == credits(INCLUDED + paid - charged)
    assert final["uncovered_used"] == credits(0)
    # included (priority 5) burns before paid (priority 10).
    left = {bucket["credit_type"]: bucket["amount"] for bucket in final["buckets"]}
    expected = {
        "included": max(INCLUDED - charged, Decimal(0)),
        "paid": paid - max(charged - INCLUDED, Decimal(0)),
    }
    assert left == {kind: credits(amount) for kind, amount in expected.items() if amount > 0}
    if budget is not None:
        [row] = final["budgets"]
        assert (row["used"], row["held"]) == (credits(charged), credits(0))
        assert row["remaining"] == credits(budget - charged)
    # One debit event per commit: nothing lost, nothing twice.
    assert await store.client.xlen(EVENTS) == events + fits
