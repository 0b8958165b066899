"""Buckets burn by priority, then earliest expiry, then oldest; expired buckets never spend."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from sidecar.service import Service
from sidecar.store.redis_store import RedisStore
from sidecar.wire import CommitRequest, GrantRequest, ReserveRequest, UpsertCustomerRequest
from tests.conftest import NOON_MS, Clock

pytestmark = pytest.mark.redis

MINUTE_MS = 60_000


def _at(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat()


async def _grant(
    service: Service, key: str, amount: str, priority: int, expires_ms: int | None
) -> str:
    answer = await service.grant(
        "acme",
        GrantRequest(
            credit_type="paid",
            amount=amount,
            priority=priority,
            expires_at=_at(expires_ms) if expires_ms is not None else None,
            idempotency_key=key,
        ),
    )
    return answer.grant_id


@pytest.mark.parametrize("commit_after_ms", [6 * MINUTE_MS, MINUTE_MS // 2])
async def test_burn_order_and_bucket_expiring_between_reserve_and_commit(
    service: Service, store: RedisStore, clock: Clock, commit_after_ms: int
) -> None:
    await service.upsert_customer("acme", UpsertCustomerRequest(plan="test"))
    soon = await _grant(service, "soon", "1", priority=0, expires_ms=NOON_MS + 5 * MINUTE_MS)
    later = await _grant(service, "later", "0.5", priority=2, expires_ms=NOON_MS + 60 * MINUTE_MS)
    clock.advance(1)
    never = await _grant(service, "never", "0.5", priority=2, expires_ms=None)
    clock.advance(1)
    never_newer = await _grant(service, "never-newer", "0.5", priority=2, expires_ms=None)
    last = await _grant(service, "last", "5", priority=9, expires_ms=None)

    hold = await service.reserve(
        ReserveRequest(
            customer="acme",
            feature="chat",
            model="small",
            amount="1.2",
            idempotency_key="r",
            ttl_ms=10 * MINUTE_MS,
        )
    )
    assert hold.allowed
    clock.advance(commit_after_ms)
    done = await service.commit(
        CommitRequest(reservation_id=hold.reservation_id or "", amount="1.2")
    )
    assert (done.result, done.overrun) == ("committed", "0.000000000")
    burned = [(b.grant_id, Decimal(b.amount)) for b in done.burned]
    if commit_after_ms > 5 * MINUTE_MS:  # `soon` expired between reserve and commit
        assert burned == [
            (later, Decimal("0.5")),
            (never, Decimal("0.5")),
            (never_newer, Decimal("0.2")),
        ]
        events = [f for _, f in await store.client.xrange(store.layout.stream_of("acme"))]
        expiry = [f for f in events if f[b"kind"] == b"expiry"]
        assert [(f[b"grant_id"].decode(), f[b"amount"]) for f in expiry] == [(soon, b"1000000000")]
    else:
        assert burned == [(soon, Decimal("1")), (later, Decimal("0.2"))]
    left = {b.grant_id: Decimal(b.amount) for b in (await service.balance("acme")).buckets}
    assert left[last] == 5


async def test_model_scoped_credits_pay_only_for_their_models(
    service: Service, clock: Clock
) -> None:
    await service.upsert_customer("acme", UpsertCustomerRequest(plan="test"))
    await service.grant("acme", GrantRequest(credit_type="scoped", amount="1", idempotency_key="s"))
    small = await service.reserve(
        ReserveRequest(
            customer="acme", feature="chat", model="small", amount="0.1", idempotency_key="a"
        )
    )
    assert small.reason == "insufficient_credits"
    big = await service.reserve(
        ReserveRequest(
            customer="acme", feature="chat", model="big", amount="0.1", idempotency_key="b"
        )
    )
    assert big.allowed
