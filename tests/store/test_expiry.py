"""Holds expire on their own: caps are freed with no sweeper running."""

from __future__ import annotations

from decimal import Decimal

import pytest

from sidecar.service import Service
from sidecar.wire import CheckRequest, CommitRequest, ReleaseRequest, ReserveRequest
from tests.conftest import Clock, Setup

pytestmark = pytest.mark.redis


def _reserve(key: str, ttl_ms: int = 1_000) -> ReserveRequest:
    return ReserveRequest(
        customer="acme",
        feature="steps",
        model="small",
        units={"requests": 1},
        idempotency_key=key,
        ttl_ms=ttl_ms,
        team="eng",
    )


async def test_expired_hold_frees_budget_balance_and_quota(
    service: Service, setup_customer: Setup, clock: Clock
) -> None:
    await setup_customer(grants={"paid": "0.01"}, budgets=[({"team": "eng"}, "day", "0.01")])
    first = await service.reserve(_reserve("a"))
    assert first.allowed
    assert (await service.reserve(_reserve("b"))).reason == "budget_exceeded"

    clock.advance(1_000)
    second = await service.reserve(_reserve("c"))
    assert second.allowed
    state = await service.balance("acme")
    assert (Decimal(state.held), Decimal(state.budgets[0].held)) == (Decimal("0.01"),) * 2
    quota = await service.check(CheckRequest(customer="acme", feature="steps"))
    assert quota.remaining == 4  # the plan allows 5 steps a day; only the live hold counts

    assert (
        await service.release(ReleaseRequest(reservation_id=first.reservation_id or ""))
    ).result == "expired"


async def test_balance_and_budgets_never_count_a_hold_past_its_time(
    service: Service, setup_customer: Setup, clock: Clock
) -> None:
    await setup_customer(grants={"paid": "1"}, budgets=[({"team": "eng"}, "day", "0.5")])
    kept = await service.reserve(_reserve("kept", ttl_ms=60_000))
    assert (await service.reserve(_reserve("ends"))).allowed
    held = await service.balance("acme")
    assert (Decimal(held.held), Decimal(held.budgets[0].held)) == (Decimal("0.02"),) * 2

    clock.advance(1_000)  # one hold's time is up; no script has run since
    state = await service.balance("acme")
    assert (Decimal(state.held), Decimal(state.budgets[0].held)) == (Decimal("0.01"),) * 2
    assert Decimal(state.balance) == Decimal("0.99")
    (budget,) = (await service.budgets("acme")).budgets
    assert (Decimal(budget.held), Decimal(budget.remaining)) == (Decimal("0.01"), Decimal("0.49"))
    await service.release(ReleaseRequest(reservation_id=kept.reservation_id or ""))
    assert Decimal((await service.balance("acme")).held) == 0


async def test_commit_after_expiry_still_charges_as_overage(
    service: Service, setup_customer: Setup, clock: Clock
) -> None:
    await setup_customer(grants={"paid": "1"})
    hold = await service.reserve(_reserve("a"))
    clock.advance(5_000)
    done = await service.commit(
        CommitRequest(reservation_id=hold.reservation_id or "", units={"requests": 1})
    )
    assert (done.result, done.cost, done.overrun, done.released) == (
        "committed",
        "0.010000000",
        "0.010000000",
        "0.000000000",
    )
    state = await service.balance("acme")
    assert (Decimal(state.balance), Decimal(state.held)) == (Decimal("0.99"), 0)
