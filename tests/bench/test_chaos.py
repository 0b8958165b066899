"""The chaos group's Redis outage, in the suite: 30 s of valkey unreachable under load."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bench.chaos import redis_down

pytestmark = pytest.mark.redis


async def test_thirty_seconds_without_redis_lose_and_double_nothing() -> None:
    outcome = await redis_down(30.0)
    print("\n".join(outcome.lines()))
    assert (outcome.lost_nanos, outcome.doubled_nanos) == (0, 0)
    assert outcome.fallback > 0  # support_agent kept answering
    assert outcome.refused["chat:store_unavailable"] > 0  # chat failed closed
    assert outcome.worst_overdraft <= Decimal(10)  # support_agent's overdraft, per customer
    assert outcome.refused["support_agent:store_unavailable"] > 0  # ... and was held to it
