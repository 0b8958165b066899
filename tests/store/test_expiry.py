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
