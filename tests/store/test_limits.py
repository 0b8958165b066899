"""Quotas, rate limits, overage and session budgets, checked in the same script as the money."""

from __future__ import annotations

from decimal import Decimal

import pytest

from sidecar.service import Service
from sidecar.wire import BudgetScope, CheckRequest, CommitRequest, ReserveRequest, SetBudgetRequest
from tests.conftest import Clock, Setup

pytestmark = pytest.mark.redis


def _chat(key: str, tokens: int = 1000, **extra: str) -> ReserveRequest:
    return ReserveRequest(
        customer="acme",
        feature="chat",
        model="small",
        units={"input_tokens": tokens},
        idempotency_key=key,
        **extra,
    )


async def test_metered_quota_counts_units_held_and_used(
    service: Service, setup_customer: Setup
) -> None:
    await setup_customer(grants={"paid": "1"})  # plan `test`: 5 steps a day
    steps = [
        await service.reserve(
            ReserveRequest(
                customer="acme",
                feature="steps",
                model="small",
                units={"requests": 2},
                idempotency_key=f"s{i}",
            )
        )
        for i in range(3)
    ]
    assert [s.allowed for s in steps] == [True, True, False]
    assert (steps[2].reason, steps[2].scope) == ("quota_exceeded", "feature:steps/d20261119")
    await service.commit(
        CommitRequest(reservation_id=steps[0].reservation_id or "", units={"requests": 1})
    )
    assert (await service.check(CheckRequest(customer="acme", feature="steps"))).remaining == 2


async def test_rate_limit_per_user_per_minute(
    service: Service, setup_customer: Setup, clock: Clock
) -> None:
    await setup_customer(plan="limited", grants={"paid": "1"})  # 3 requests, 5000 tokens a minute
    answers = [await service.reserve(_chat(f"k{i}", user="u-1")) for i in range(4)]
    assert [a.allowed for a in answers] == [True, True, True, False]
    assert answers[3].scope == "user:u-1/requests_per_minute"
    assert (await service.reserve(_chat("other", user="u-2"))).allowed
    assert (await service.reserve(_chat("big", 4001, user="u-2"))).scope == (
        "user:u-2/tokens_per_minute"
    )
    clock.advance(60_000)
    assert (await service.reserve(_chat("next-minute", user="u-1"))).allowed


async def test_overage_allows_past_the_balance_up_to_the_cap(
    service: Service, setup_customer: Setup
) -> None:
    await setup_customer(plan="overage", grants={"paid": "0.001"})  # cap: 0.01 a month
    hold = await service.reserve(_chat("a", 60_000))  # 0.009 credits
    assert hold.allowed
    done = await service.commit(
        CommitRequest(reservation_id=hold.reservation_id or "", units={"input_tokens": 60_000})
    )
    assert (done.cost, done.uncovered) == ("0.009000000", "0.008000000")
    state = await service.balance("acme")
    assert (state.balance, state.overage_used) == ("0.000000000", "0.008000000")
    assert (await service.reserve(_chat("b", 20_000))).reason == "insufficient_credits"
    assert (await service.reserve(_chat("c", 13_333))).allowed  # 0.0019995 <= 0.002 left


async def test_plan_session_budget_applies_unless_the_session_has_its_own(
    service: Service, setup_customer: Setup
) -> None:
    await setup_customer(plan="sessions", grants={"paid": "1"})  # 0.002 per session
    answers = [await service.reserve(_chat(f"k{i}", session="run-1")) for i in range(15)]
    assert sum(a.allowed for a in answers) == 13  # 13 * 0.00015 = 0.00195
    assert answers[-1].scope == "session:run-1/lifetime"
    assert answers[-1].reason == "session_budget_exceeded"
    await service.set_budget(
        "acme",
        SetBudgetRequest(scope=BudgetScope(session="run-2"), period="lifetime", limit="0.0003"),
    )
    assert (
        sum([(await service.reserve(_chat(f"r2-{i}", session="run-2"))).allowed for i in range(3)])
        == 2
    )


async def test_soft_budget_allows_and_names_itself(service: Service, setup_customer: Setup) -> None:
    await setup_customer(grants={"paid": "1"})
    await service.set_budget(
        "acme", SetBudgetRequest(scope=BudgetScope(team="eng"), limit="0.0001", mode="soft")
    )
    answer = await service.reserve(_chat("a", team="eng"))
    assert answer.allowed
    assert answer.soft_limits_hit == ["team:eng/month"]
    assert Decimal(answer.remaining["team"]) == Decimal("-0.00005")


async def test_unknown_customer_and_local_denials(service: Service, setup_customer: Setup) -> None:
    assert (await service.reserve(_chat("a"))).reason == "unknown_customer"
    await setup_customer(plan="limited", grants={"paid": "1"})
    assert (
        await service.reserve(
            ReserveRequest(customer="acme", feature="chat", model="big", idempotency_key="m")
        )
    ).reason == "model_not_allowed"
    assert (
        await service.reserve(
            ReserveRequest(customer="acme", feature="tickets", idempotency_key="t")
        )
    ).reason == "feature_not_entitled"
