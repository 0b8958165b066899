"""Invariant 1 over gRPC: 400 concurrent reserves spread over 10 GrpcClients (10 channels, so 10
HTTP/2 connections) admit exactly what fits, held + settled never passes a cap while they race,
and committing everything at once leaves the exact Decimal balance with nothing held."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from sidecar.client import GrpcClient
from sidecar.server import Sidecar
from sidecar.store.redis_store import RedisStore
from sidecar.wire import CommitRequest, ReserveRequest, SetBudgetRequest
from tests.rpc.conftest import (
    ADMIN_TOKEN,
    cost,
    credits,
    events_key,
    floor_nano,
    grpc_admin_target,
    grpc_target,
    plan_grant,
    seed,
)

pytestmark = pytest.mark.redis

CALLS = 400
CHANNELS = 10
USERS = 20  # 20 reserves per user: under pro's 120 per user and 600 per customer per minute
INCLUDED = plan_grant("pro")
MODEL = "gpt-4o-mini"
WORST = {"input_tokens": 1200, "output_tokens": 800}


@pytest.fixture
async def many(sidecar: Sidecar) -> AsyncIterator[list[GrpcClient]]:
    clients = [
        GrpcClient(
            grpc_target(sidecar),
            admin_target=grpc_admin_target(sidecar),
            admin_token=ADMIN_TOKEN,
            timeout_s=30,
        )
        for _ in range(CHANNELS)
    ]
    try:
        yield clients
    finally:
        for client in clients:
            await client.close()


def _reserve(i: int, case: str) -> ReserveRequest:
    common: dict[str, Any] = {
        "customer": "acme",
        "team": "eng",
        "user": f"u-{i % USERS}",
        "feature": "chat",
        "idempotency_key": f"{case}-{i}",
    }
    if case == "balance":
        return ReserveRequest(**common, amount="0.1")
    return ReserveRequest(**common, model=MODEL, units=WORST)


async def _watch(client: GrpcClient, done: asyncio.Event) -> int:
    """Read the balance over gRPC while the race runs; every reading must respect the caps."""
    readings = 0
    while not done.is_set():
        state = await client.balance("acme")
        buckets = sum(Decimal(bucket.amount) for bucket in state.buckets)
        assert Decimal(state.held) <= buckets
        assert Decimal(state.balance) >= 0
        for row in state.budgets:
            assert Decimal(row.used) + Decimal(row.held) <= Decimal(row.limit)
        readings += 1
        await asyncio.sleep(0)
    return readings


async def _debits(store: RedisStore) -> int:
    """Consumption events in acme's stream (the plan's alerts add entries of their own)."""
    entries = await store.client.xrange(events_key("acme"))
    return sum(fields[b"kind"] == b"debit" for _, fields in entries)


@pytest.mark.parametrize(
    ("case", "paid", "budget", "hold", "reason", "scope"),
    [
        # 20 included + 1.05 paid credits, 0.1 credits per reserve: 210 of 400 fit.
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
async def test_400_concurrent_reserves_on_10_channels_admit_exactly_what_fits(
    many: list[GrpcClient],
    store: RedisStore,
    case: str,
    paid: Decimal,
    budget: Decimal | None,
    hold: Decimal,
    reason: str,
    scope: str,
) -> None:
    budgets = [] if budget is None else [SetBudgetRequest(limit=str(budget))]
    await seed(many[0], grants={"paid": str(paid)}, budgets=budgets)
    cap = INCLUDED + paid if budget is None else budget
    fits = int(cap // hold)
    assert 0 < fits < CALLS
    events = await _debits(store)

    done = asyncio.Event()
    watcher = asyncio.create_task(_watch(many[-1], done))
    answers = await asyncio.gather(
        *(many[i % CHANNELS].reserve(_reserve(i, case)) for i in range(CALLS))
    )

    outcomes = Counter((a.allowed, a.reason, a.scope) for a in answers)
    assert outcomes == {(True, "ok", None): fits, (False, reason, scope): CALLS - fits}
    admitted = [(i, a) for i, a in enumerate(answers) if a.allowed]
    assert all(a.held == credits(hold) for _, a in admitted)
    assert len({a.reservation_id for _, a in admitted}) == fits
    assert len({i % CHANNELS for i, _ in admitted}) > 1  # admitted over several channels

    state = await many[0].balance("acme")
    assert Decimal(state.held) == fits * hold <= cap
    assert Decimal(state.balance) == INCLUDED + paid - fits * hold

    # Commit every admitted call at a random actual cost within its hold, all at once, each on
    # another channel than the one that reserved it.
    rng = random.Random(f"grpc-{case}")
    commits: list[tuple[int, CommitRequest]] = []
    actual = Decimal(0)
    for i, answer in admitted:
        rid = answer.reservation_id
        assert rid is not None
        if case == "balance":
            amount = Decimal(rng.randint(0, 10**8)) / 10**9  # 0 to 0.1, nine digits
            commits.append((i + 1, CommitRequest(reservation_id=rid, amount=credits(amount))))
            actual += amount
        else:
            units = {"input_tokens": rng.randint(0, 1200), "output_tokens": rng.randint(0, 800)}
            commits.append((i + 1, CommitRequest(reservation_id=rid, units=units)))
            actual += cost(MODEL, units)
    results = await asyncio.gather(*(many[i % CHANNELS].commit(c) for i, c in commits))
    done.set()
    readings = await watcher
    assert readings > 0

    assert all(r.result == "committed" for r in results)
    assert all(r.overrun == credits(0) for r in results)
    assert all(r.uncovered == credits(0) for r in results)
    charged = floor_nano(actual)  # the carried sub-nano remainder rounds the run down, once
    assert sum(Decimal(r.cost) for r in results) == charged
    assert sum(Decimal(r.released) for r in results) == fits * hold - charged
    assert sum(Decimal(b.amount) for r in results for b in r.burned) == charged

    final = await many[3].balance("acme")
    assert final.held == credits(0)
    assert final.balance == credits(INCLUDED + paid - charged)
    assert final.uncovered_used == credits(0)
    # included (priority 5) burns before paid (priority 10).
    left = {bucket.credit_type: bucket.amount for bucket in final.buckets}
    expected = {
        "included": max(INCLUDED - charged, Decimal(0)),
        "paid": paid - max(charged - INCLUDED, Decimal(0)),
    }
    assert left == {kind: credits(amount) for kind, amount in expected.items() if amount > 0}
    if budget is not None:
        [row] = final.budgets
        assert (row.used, row.held) == (credits(charged), credits(0))
        assert row.remaining == credits(budget - charged)
    # One consumption event per commit: nothing lost, nothing twice.
    assert await _debits(store) == events + fits

    # Retrying every commit on yet other channels moves nothing and repeats the first answers.
    again = await asyncio.gather(*(many[(i + 5) % CHANNELS].commit(c) for i, c in commits))
    assert [r.result for r in again] == ["already_committed"] * fits
    assert [r.cost for r in again] == [r.cost for r in results]
    assert await many[0].balance("acme") == final
    assert await _debits(store) == events + fits
