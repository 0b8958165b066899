"""Edges a review found: zero-unit calls at a full cap, replays with another body, costs too
large for one call, and a cached customer crossing into a new month."""

from __future__ import annotations

from decimal import Decimal

import pytest

from sidecar.catalog import Catalog
from sidecar.errors import InvalidInput
from sidecar.service import Service
from sidecar.store.redis_store import RedisStore
from sidecar.wire import CheckRequest, CommitRequest, ReserveRequest, UpsertCustomerRequest
from tests.conftest import Clock, Setup

pytestmark = pytest.mark.redis


def _steps(key: str, units: int | None, amount: str | None = None) -> ReserveRequest:
    return ReserveRequest(
        customer="acme", feature="steps", model="small", idempotency_key=key,
        units=None if units is None else {"requests": units}, amount=amount,
    )  # fmt: skip


async def test_a_call_declaring_no_units_is_refused_once_the_quota_is_used_up(
    service: Service, setup_customer: Setup
) -> None:
    await setup_customer(grants={"paid": "1"})  # plan `test`: 5 steps a day
    assert (await service.reserve(_steps("all", 5))).allowed
    sneaky = await service.reserve(_steps("none", None, amount="0.01"))
    assert (sneaky.allowed, sneaky.reason) == (False, "quota_exceeded")


async def test_a_zero_cost_call_is_refused_past_a_used_up_budget(
    service: Service, setup_customer: Setup
) -> None:
    await setup_customer(grants={"paid": "1"}, budgets=[({}, "month", "0.01")])
    assert (await service.reserve(_steps("all", 1))).allowed  # holds the whole 0.01
    free = await service.reserve(
        ReserveRequest(customer="acme", feature="chat", idempotency_key="free")
    )
    assert (free.allowed, free.reason) == (False, "budget_exceeded")


async def test_a_replay_with_another_body_is_priced_as_the_first_request(
    service: Service, setup_customer: Setup
) -> None:
    await setup_customer(grants={"paid": "10"})
    first = await service.reserve(
        ReserveRequest(customer="acme", feature="chat", model="small",
                       units={"input_tokens": 1000}, idempotency_key="same")
    )  # fmt: skip
    replay = await service.reserve(
        ReserveRequest(customer="acme", feature="chat", model="big",
                       units={"input_tokens": 1000}, idempotency_key="same")
    )  # fmt: skip
    assert replay.reservation_id == first.reservation_id
    done = await service.commit(
        CommitRequest(reservation_id=first.reservation_id or "", units={"input_tokens": 1000})
    )
    assert Decimal(done.cost) == Decimal("0.15") / 1000  # small's price, not big's


async def test_a_commit_costing_more_than_one_call_may_is_refused_and_moves_nothing(
    service: Service, store: RedisStore, setup_customer: Setup
) -> None:
    await setup_customer(grants={"paid": "10"})
    hold = await service.reserve(
        ReserveRequest(customer="acme", feature="tickets", units={"tickets_resolved": 1},
                       idempotency_key="t")
    )  # fmt: skip
    before = (
        await service.balance("acme"),
        await store.client.xlen(store.layout.stream_of("acme")),
    )
    with pytest.raises(InvalidInput) as error:
        await service.commit(
            CommitRequest(reservation_id=hold.reservation_id or "",
                          units={"tickets_resolved": 10**12})
        )  # fmt: skip
    assert error.value.field == "units"
    assert (
        await service.balance("acme"),
        await store.client.xlen(store.layout.stream_of("acme")),
    ) == before


async def test_a_cached_customer_gets_its_plan_grant_in_a_new_month(
    store: RedisStore, catalog: Catalog, clock: Clock
) -> None:
    service = Service(store, catalog, clock=clock)  # the example catalog: pro grants 20 a month
    await service.upsert_customer("acme", UpsertCustomerRequest(plan="pro"))
    await service.check(CheckRequest(customer="acme", feature="chat"))  # now cached
    clock.now_ms = 1_796_083_200_000 + 1_000  # 2026-12-01T00:00:01Z
    hold = await service.reserve(
        ReserveRequest(customer="acme", feature="chat", model="gpt-4o-mini",
                       units={"input_tokens": 1000}, idempotency_key="december")
    )  # fmt: skip
    assert hold.allowed
    buckets = (await service.balance("acme")).buckets
    assert [(b.credit_type, b.amount, b.expires_at) for b in buckets] == [
        ("included", "20.000000000", "2027-01-01T00:00:00.000Z")
    ]
