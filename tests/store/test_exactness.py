"""Invariant 2, exact money: to the nano-credit from 1 nano to 10^9 credits, across 2^53."""

from __future__ import annotations

from decimal import Decimal

import pytest

from sidecar.service import Service
from sidecar.wire import CommitRequest, GrantRequest, ReserveRequest, SetBudgetRequest
from tests.conftest import Setup

pytestmark = pytest.mark.redis

NANO = Decimal("0.000000001")
TWO_53 = Decimal(2**53) * NANO  # 9007199.254740992 credits: where doubles stop being exact


async def _spend(service: Service, key: str, amount: str) -> tuple[str, str]:
    hold = await service.reserve(
        ReserveRequest(customer="acme", feature="chat", amount=amount, idempotency_key=key)
    )
    assert hold.allowed, hold
    done = await service.commit(
        CommitRequest(reservation_id=hold.reservation_id or "", amount=amount)
    )
    return hold.remaining["balance"], done.cost


async def test_a_billion_credits_to_the_nano(service: Service, setup_customer: Setup) -> None:
    await setup_customer(
        grants={"paid": "1000000000", "promo": "1000000000"},
        budgets=[({}, "lifetime", "1000000000")],
    )
    remaining, cost = await _spend(service, "big", "999999999.999999999")
    assert cost == "999999999.999999999"
    assert remaining == "1000000000.000000001"
    remaining, _ = await _spend(service, "nano", "0.000000001")
    assert remaining == "1000000000.000000000"
    state = await service.balance("acme")
    assert state.balance == "1000000000.000000000"
    assert state.budgets[0].used == "1000000000.000000000"
    assert state.budgets[0].remaining == "0.000000000"
    denied = await service.reserve(
        ReserveRequest(customer="acme", feature="chat", amount="0.000000001", idempotency_key="x")
    )
    assert (denied.allowed, denied.reason) == (False, "budget_exceeded")


async def test_sums_across_the_2_53_boundary(service: Service, setup_customer: Setup) -> None:
    below = str(TWO_53 - NANO)
    await setup_customer(grants={"paid": below})
    for key in ("one", "two", "three"):
        await service.grant(
            "acme", GrantRequest(credit_type="promo", amount="0.000000001", idempotency_key=key)
        )
    state = await service.balance("acme")
    assert Decimal(state.balance) == TWO_53 + 2 * NANO
    assert state.balance == f"{TWO_53 + 2 * NANO:.9f}"
    remaining, _ = await _spend(service, "a", "0.000000003")
    assert Decimal(remaining) == TWO_53 - NANO
    # The lifetime budget has 3 nano-credits used: 2^53 + 3 leaves exactly 2^53 of room.
    await service.set_budget(
        "acme", SetBudgetRequest(limit=str(TWO_53 + 3 * NANO), period="lifetime")
    )
    remaining, _ = await _spend(service, "b", str(TWO_53 - NANO))
    assert remaining == "0.000000000"
    assert (await service.balance("acme")).budgets[0].remaining == "0.000000001"


async def test_sub_nano_costs_carry_exactly_through_the_store(
    service: Service, setup_customer: Setup
) -> None:
    # `tiny` costs 0.4 nano-credit a request: 25 calls cost exactly 10 nano-credits.
    await setup_customer(grants={"paid": "1"})
    costs = []
    for i in range(25):
        hold = await service.reserve(
            ReserveRequest(
                customer="acme",
                feature="chat",
                model="tiny",
                units={"requests": 1},
                idempotency_key=f"t{i}",
            )
        )
        assert hold.held == "0.000000001"  # a hold rounds up
        done = await service.commit(
            CommitRequest(reservation_id=hold.reservation_id or "", units={"requests": 1})
        )
        costs.append(Decimal(done.cost))
    assert sum(costs) == 25 * Decimal("0.0000000004")
    assert costs[:5] == [0, 0, NANO, 0, NANO]  # 0.4, 0.8, 1.2, 1.6, 2.0: whole nanos as they form
    assert Decimal((await service.balance("acme")).balance) == 1 - 10 * NANO
