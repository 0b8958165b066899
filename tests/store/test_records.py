"""Redis memory does not grow with call volume past the idempotency window: a resolved hold
leaves only what a retry needs, compact, in its window's hash, which expires as a whole; and a
retry after the compaction is answered as the first attempt was."""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec
import pytest

from sidecar.service import Service
from sidecar.store import layout
from sidecar.store.redis_store import RedisStore
from sidecar.wire import CommitRequest, ReleaseRequest, ReserveRequest
from tests.conftest import REDIS_TIMEOUT_S, Clock, Setup

pytestmark = pytest.mark.redis

WINDOW_MS = 120_000
SLACK_MS = 30_000
"""PTTL is read a moment after the write: only a wrong lifetime is this far off."""


def _reserve(key: str, ttl_ms: int = 60_000) -> ReserveRequest:
    return ReserveRequest(
        customer="acme", feature="chat", model="small", units={"input_tokens": 100_000},
        idempotency_key=key, ttl_ms=ttl_ms,
    )  # fmt: skip


@pytest.fixture
async def other(
    store: RedisStore, redis_url: str, service: Service, clock: Clock
) -> AsyncIterator[Service]:
    """A second sidecar on the same Redis, with a two-minute idempotency window and no memory
    of the holds the first one placed (as after a restart, or on another pod)."""
    other_store = RedisStore(redis_url, timeout_s=REDIS_TIMEOUT_S, idempotency_window_ms=WINDOW_MS)
    await other_store.agree_layout()
    yield Service(other_store, service.catalog, clock=clock)
    await other_store.close()


async def _pttl(store: RedisStore, name: str) -> int:
    ttl: int = await store.client.pttl(store.layout.key("acme", name))
    return ttl


async def test_a_retry_after_the_compaction_returns_the_first_answer(
    service: Service, other: Service, store: RedisStore, setup_customer: Setup, clock: Clock
) -> None:
    await setup_customer(grants={"promo": "0.005", "paid": "1"})  # the cost burns two buckets
    held = await service.reserve(_reserve("k-1"))
    assert held.allowed, held
    rid = held.reservation_id or ""
    commit = CommitRequest(reservation_id=rid, units={"input_tokens": 90_000})
    first = await service.commit(commit)
    assert (first.result, len(first.burned)) == ("committed", 2), first

    # The full record is gone; what is left is one compact field in the window's hash.
    window = layout.record_window(clock())
    assert not await store.client.exists(store.layout.key("acme", layout.HOLDS))
    record = await store.client.hget(store.layout.key("acme", layout.resolved_key(window)), rid)
    assert record is not None
    assert record.startswith(b"c|"), record
    assert len(record) < 120, record

    again = msgspec.to_builtins(await other.commit(commit))
    assert again == {**msgspec.to_builtins(first), "result": "already_committed"}
    released = await other.release(ReleaseRequest(reservation_id=rid))
    assert released.result == "already_committed"
    retried = await other.reserve(_reserve("k-1"))
    assert (retried.allowed, retried.reservation_id, retried.held) == (True, rid, held.held)
    state = await service.balance("acme")
    assert state.held == "0.000000000"  # nothing held again, nothing charged twice
    # 90,000 input tokens at 0.15 per million: 0.0135, of which promo paid 0.005.
    assert [b.amount for b in state.buckets] == ["0.991500000"]


async def test_a_release_is_remembered_compactly_too(
    service: Service, other: Service, store: RedisStore, setup_customer: Setup, clock: Clock
) -> None:
    await setup_customer(grants={"paid": "1"})
    rid = (await service.reserve(_reserve("k-2"))).reservation_id or ""
    assert (await service.release(ReleaseRequest(reservation_id=rid))).result == "released"
    window = layout.record_window(clock())
    record = await store.client.hget(store.layout.key("acme", layout.resolved_key(window)), rid)
    assert record == b"r"
    assert (await other.release(ReleaseRequest(reservation_id=rid))).result == "already_released"
    late = await other.commit(CommitRequest(reservation_id=rid, units={"input_tokens": 1}))
    assert late.result == "already_released"


async def test_records_live_for_the_window_and_while_their_hold_is_in_flight(
    other: Service, store: RedisStore, setup_customer: Setup, clock: Clock
) -> None:
    await setup_customer(grants={"paid": "1"})
    window = layout.record_window(clock())
    short = await other.reserve(_reserve("k-3"))
    assert short.allowed
    reserves = layout.reserves_key(window)
    assert WINDOW_MS - SLACK_MS < await _pttl(store, reserves) <= WINDOW_MS

    await other.commit(CommitRequest(reservation_id=short.reservation_id or "", units={}))
    resolved = layout.resolved_key(window)
    assert WINDOW_MS - SLACK_MS < await _pttl(store, resolved) <= WINDOW_MS

    # A hold that outlives the window keeps its reserve record as long: a retry of it while
    # it is in flight is still the first attempt's.
    long_ttl = 3 * WINDOW_MS
    first = await other.reserve(_reserve("k-4", ttl_ms=long_ttl))
    assert long_ttl - SLACK_MS < await _pttl(store, reserves) <= long_ttl
    clock.advance(2 * WINDOW_MS)  # past the window, into a later record window
    again = await other.reserve(_reserve("k-4", ttl_ms=long_ttl))
    assert again == first
    assert (await other.balance("acme")).held == first.held
