"""Graduated tiers priced in the commit script: concurrent commits that straddle tier
boundaries are priced as if they ran one after the other, to the nano-credit of a Decimal
reference; every hold covers its call (no overrun, nothing spent past the hold); a new month
starts again at the first tier."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from sidecar.catalog.model import Catalog
from sidecar.engine.customer import CustomerSnapshot, tiers_of
from sidecar.engine.tiers import graduated_femtos
from sidecar.service import Service
from sidecar.store.redis_store import RedisStore
from sidecar.wire import CommitRequest, ReserveRequest
from tests.conftest import Clock, Setup, stream_events

pytestmark = pytest.mark.redis

TIERS = [(10_000, Decimal("3")), (30_000, Decimal("1.5")), (None, Decimal("0.123456789"))]
"""tests/store/catalog.yaml, models.tiered.tiers.input_tokens: per million tokens."""
OUTPUT = Decimal(2) / 10**6
DAY_MS = 86_400_000


def _reference(calls: list[int], start: int = 0) -> Decimal:
    """Credits the calls cost, run one after the other, in Decimal."""
    total, at = Decimal(0), start
    for units in calls:
        for _ in range(units):  # one token at a time: no tier arithmetic to get wrong
            price = next(p for up_to, p in TIERS if up_to is None or at < up_to)
            total += price / 10**6
            at += 1
        total += OUTPUT * 10
    return total


async def _call(service: Service, key: str, units: int) -> dict[str, str]:
    reserved = {"input_tokens": units, "output_tokens": 10}
    held = await service.reserve(
        ReserveRequest(customer="acme", feature="chat", model="tiered", units=reserved,
                       idempotency_key=key)
    )  # fmt: skip
    assert held.allowed, held
    done = await service.commit(
        CommitRequest(reservation_id=held.reservation_id or "", units=reserved)
    )
    assert done.result == "committed", done
    return {"held": held.held or "0", "cost": done.cost or "0"}


def test_the_script_reference_prices_tier_by_tier(store_catalog: Catalog) -> None:
    tiers = tiers_of(store_catalog, CustomerSnapshot(id="acme", plan="test"), "tiered")
    units = [10_000 - 3, 7, 25_000, 1]
    femtos, at = 0, 0
    for count in units:
        femtos += graduated_femtos(tiers["input_tokens"], at, count)
        at += count
    assert Decimal(femtos) / 10**15 == _reference(units) - OUTPUT * 10 * len(units)


async def test_500_concurrent_commits_across_two_tier_boundaries_cost_the_sequential_total(
    sidecars: list[Service], store: RedisStore, setup_customer: Setup, clock: Clock
) -> None:
    await setup_customer(grants={"paid": "10"})
    calls = [50 + (i * 37) % 97 for i in range(500)]  # 48,473 tokens: past 10 k and 30 k
    assert sum(calls) > 30_000
    answers = await asyncio.gather(
        *(_call(sidecars[i % 4], f"k{i}", units) for i, units in enumerate(calls))
    )
    debits = await stream_events(store, "debit")
    assert len(debits) == 500
    charged = sum(int(d["cost"]) for d in debits)
    exact = _reference(calls) * 10**9  # nano-credits
    assert charged == int(exact)  # the carry: the exact total rounded down, never a nano less
    assert all(d["overrun"] == "0" for d in debits)  # every hold covered its call
    assert all(Decimal(a["cost"]) <= Decimal(a["held"]) for a in answers)
    balance = await sidecars[0].balance("acme")
    assert Decimal(balance.balance) == Decimal(10) - Decimal(charged) / 10**9
    assert Decimal(balance.held) == 0

    clock.advance(31 * DAY_MS)  # a new month counts from the first tier again
    await setup_customer(grants={"paid": "1"})
    first = await _call(sidecars[0], "next", 100)
    assert Decimal(first["cost"]) == _reference([100])


async def test_a_hold_counts_from_the_tier_the_month_stands_in(
    service: Service, setup_customer: Setup
) -> None:
    await setup_customer(grants={"paid": "1"})
    worst = {"input_tokens": 1000, "output_tokens": 10}
    keys = iter(range(10))

    async def held() -> Decimal:
        answer = await service.reserve(
            ReserveRequest(customer="acme", feature="chat", model="tiered", units=worst,
                           idempotency_key=f"h{next(keys)}")
        )  # fmt: skip
        assert answer.allowed, answer
        assert answer.held is not None
        return Decimal(answer.held)

    first, second = Decimal(1000 * 3 + 10 * 2), Decimal(1000) * Decimal("1.5") + 10 * 2
    assert await held() == first / 10**6
    await _call(service, "almost", 9_999)  # the counter at 9,999: still in the first tier
    assert await held() == first / 10**6
    await _call(service, "past", 1)  # at 10,000: the second tier, and nothing above it after
    assert await held() == second / 10**6
