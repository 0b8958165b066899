"""Invariant 1, no overspend: settled + held never exceeds a cap, however many callers race."""

from __future__ import annotations

import asyncio
import random
from decimal import Decimal

import pytest

from sidecar.service import Service
from sidecar.store.redis_store import RedisStore
from sidecar.wire import CommitRequest, ReserveRequest
from tests.conftest import Setup

pytestmark = pytest.mark.redis

# Each call reserves 1000 input + 1000 output tokens of `small`: 0.00075 credits.
HOLD = Decimal("0.00075")
PRICE_IN, PRICE_OUT = Decimal("0.15") / 10**6, Decimal("0.60") / 10**6


def _reserve(i: int, **subject: str) -> ReserveRequest:
    return ReserveRequest(
        customer="acme",
        feature="chat",
        model="small",
        units={"input_tokens": 1000, "output_tokens": 1000},
        idempotency_key=f"k-{i}",
        **subject,
    )


async def _caps(store: RedisStore, month: str) -> tuple[int, int, int]:
    """(budget used + held, balance held, credits left in buckets), read in one transaction."""
    prefix = store.layout.prefix("acme")
    async with store.client.pipeline(transaction=True) as pipe:
        pipe.hmget(f"{prefix}:u:{month}", "customer|used", "customer|held")
        pipe.hget(f"{prefix}:balance", "held")
        pipe.hvals(f"{prefix}:bucket")
        (used, held), balance_held, buckets = await pipe.execute()
    return int(used or 0) + int(held or 0), int(balance_held or 0), sum(map(int, buckets))


@pytest.mark.parametrize(
    ("balance", "budget", "admitted"),
    [
        ("0.1", "1", 133),  # the balance binds: 133 * 0.00075 = 0.09975
        ("1", "0.075", 100),  # the budget binds: 100 * 0.00075 = 0.075
    ],
)
async def test_500_concurrent_reserves_admit_exactly_what_fits(
    sidecars: list[Service],
    service: Service,
    store: RedisStore,
    setup_customer: Setup,
    balance: str,
    budget: str,
    admitted: int,
) -> None:
    await setup_customer(grants={"paid": balance}, budgets=[({}, "month", budget)])
    cap_balance = int(Decimal(balance) * 10**9)
    cap_budget = int(Decimal(budget) * 10**9)
    month = "m202611"
    observations = 0
    done = asyncio.Event()

    async def watch() -> None:
        nonlocal observations
        while not done.is_set():
            budget_in_use, held, left = await _caps(store, month)
            assert budget_in_use <= cap_budget
            assert held <= left == cap_balance
            observations += 1
            await asyncio.sleep(0)

    watcher = asyncio.create_task(watch())
    answers = await asyncio.gather(
        *(sidecars[i % len(sidecars)].reserve(_reserve(i)) for i in range(500))
    )
    done.set()
    await watcher
    assert observations > 0

    allowed = [a for a in answers if a.allowed]
    denied = {a.reason for a in answers if not a.allowed}
    assert len(allowed) == admitted
    assert denied == {"insufficient_credits" if cap_balance < cap_budget else "budget_exceeded"}
    budget_in_use, held, _ = await _caps(store, month)
    assert held == budget_in_use == admitted * int(HOLD * 10**9)

    rng = random.Random(7)
    actual = [(rng.randint(0, 1000), rng.randint(0, 1000)) for _ in allowed]
    commits = await asyncio.gather(
        *(
            sidecars[i % len(sidecars)].commit(
                CommitRequest(
                    reservation_id=a.reservation_id or "",
                    units={"input_tokens": tokens_in, "output_tokens": tokens_out},
                )
            )
            for i, (a, (tokens_in, tokens_out)) in enumerate(zip(allowed, actual, strict=True))
        )
    )
    assert {c.result for c in commits} == {"committed"}
    spent = sum(PRICE_IN * i + PRICE_OUT * o for i, o in actual)
    state = await service.balance("acme")
    assert Decimal(state.balance) == Decimal(balance) - spent
    assert Decimal(state.held) == 0
    assert Decimal(state.budgets[0].used) == spent
    assert sum(Decimal(c.cost) for c in commits) == spent


@pytest.mark.parametrize(
    ("budgets", "binding", "reason", "admitted"),
    [
        (
            {"customer": "0.003", "team": "0.004", "agent": "0.005", "session": "0.006"},
            "customer/month",
            "budget_exceeded",
            4,
        ),
        (
            {"customer": "0.01", "team": "0.002", "agent": "0.005", "session": "0.006"},
            "team:eng/month",
            "budget_exceeded",
            2,
        ),
        (
            {"customer": "0.01", "team": "0.004", "agent": "0.0015", "session": "0.006"},
            "agent:writer/month",
            "budget_exceeded",
            2,
        ),
        (
            {"customer": "0.01", "team": "0.004", "agent": "0.005", "session": "0.001"},
            "session:run-1/lifetime",
            "session_budget_exceeded",
            1,
        ),
    ],
)
async def test_tightest_budget_binds_and_is_named(
    sidecars: list[Service],
    setup_customer: Setup,
    budgets: dict[str, str],
    binding: str,
    reason: str,
    admitted: int,
) -> None:
    scopes = {
        "customer": {},
        "team": {"team": "eng"},
        "agent": {"agent": "writer"},
        "session": {"session": "run-1"},
    }
    await setup_customer(
        grants={"paid": "10"},
        budgets=[
            (scopes[kind], "lifetime" if kind == "session" else "month", limit)
            for kind, limit in budgets.items()
        ],
    )
    subject = {"team": "eng", "user": "u-1", "agent": "writer", "session": "run-1"}
    answers = await asyncio.gather(
        *(sidecars[i % 4].reserve(_reserve(i, **subject)) for i in range(40))
    )
    assert sum(a.allowed for a in answers) == admitted
    denials = {(a.reason, a.scope) for a in answers if not a.allowed}
    assert denials == {(reason, binding)}
