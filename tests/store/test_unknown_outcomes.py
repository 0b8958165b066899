"""No hidden holds, honest commits: a call whose answer Redis never delivered (stalled, then
dropped, by a loopback proxy between the sidecar and a real valkey) is resolved by the
sidecar as soon as Redis answers again. Afterwards the holds in Redis are exactly those
answered allowed and not yet resolved, and a commit told ``outcome_unknown`` was applied once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal

import pytest

from bench.faults import FaultProxy
from sidecar.errors import OutcomeUnknown
from sidecar.service import Service
from sidecar.store.redis_store import RedisStore
from sidecar.wire import CommitRequest, ReleaseRequest, ReserveRequest
from tests.conftest import Clock, Setup

pytestmark = pytest.mark.redis

DEADLINE_S = 0.3
SETTLED_WITHIN_S = 30.0
"""How long the sidecar may take to resolve what it was not told; only a bug takes this long."""


def _reserve(key: str) -> ReserveRequest:
    return ReserveRequest(
        customer="acme", feature="chat", model="small", units={"input_tokens": 1000},
        idempotency_key=key,
    )  # fmt: skip


@pytest.fixture
async def faulty(
    proxy: FaultProxy, service: Service, clock: Clock, setup_customer: Setup
) -> AsyncIterator[Service]:
    """A sidecar whose Redis connections go through the proxy, with a short deadline; the
    customer is set up and cached first."""
    await setup_customer(grants={"paid": "1"})
    store = RedisStore(proxy.url, timeout_s=DEADLINE_S, deadline_s=DEADLINE_S)
    await store.agree_layout()
    sidecar = Service(store, service.catalog, clock=clock)
    assert (await sidecar.reserve(_reserve("warm"))).allowed
    yield sidecar
    await sidecar.close()
    await store.close()


async def _until(condition: Callable[[], Awaitable[bool]]) -> None:
    deadline = time.monotonic() + SETTLED_WITHIN_S
    while not await condition():
        assert time.monotonic() < deadline, "not settled"
        await asyncio.sleep(0.05)


async def _settled(sidecar: Service) -> bool:
    return len(sidecar.unsettled) == 0 and len(sidecar.fallback.spool) == 0


async def _held(service: Service) -> Decimal:
    return Decimal((await service.balance("acme")).held)


@pytest.mark.parametrize("fault", ["stall", "drop"])
async def test_after_faults_the_holds_are_exactly_the_allowed_ones(
    faulty: Service, service: Service, proxy: FaultProxy, fault: str
) -> None:
    hold = Decimal((await faulty.reserve(_reserve("warm"))).held)  # the one allowed so far
    proxy.stall(True)  # the scripts run in Redis; their answers do not come back
    answers = await asyncio.gather(*(faulty.reserve(_reserve(f"k-{i}")) for i in range(20)))
    assert {a.reason for a in answers} == {"store_unavailable"}
    assert await _held(service) == 21 * hold  # yet every one of them placed its hold
    if fault == "drop":
        proxy.drop()  # the answers are lost for good
    proxy.stall(False)
    await _until(lambda: _settled(faulty))
    assert await _held(service) == hold  # only the allowed one still holds

    # A retry of a voided key is decided afresh: one new hold, as for a first attempt.
    again = await faulty.reserve(_reserve("k-3"))
    assert again.allowed, again
    assert await _held(service) == 2 * hold


async def test_a_retry_waits_for_the_void_of_its_own_unanswered_attempt(
    faulty: Service, service: Service, proxy: FaultProxy
) -> None:
    hold = Decimal((await faulty.reserve(_reserve("warm"))).held)
    proxy.stall(True)
    assert (await faulty.reserve(_reserve("same"))).reason == "store_unavailable"
    proxy.stall(False)
    retry = await faulty.reserve(_reserve("same"))  # before the background void: settled first
    assert retry.allowed, retry
    assert await _held(service) == 2 * hold  # the first attempt's hold is gone, the retry's is in


async def test_a_commit_of_unknown_outcome_is_applied_once(
    faulty: Service, service: Service, store: RedisStore, proxy: FaultProxy
) -> None:
    rid = (await faulty.reserve(_reserve("c-1"))).reservation_id or ""
    commit = CommitRequest(reservation_id=rid, units={"input_tokens": 800})
    proxy.stall(True)
    with pytest.raises(OutcomeUnknown) as unknown:
        await faulty.commit(commit)
    assert unknown.value.field == "reservation_id"
    proxy.drop()
    proxy.stall(False)
    await _until(lambda: _settled(faulty))
    retry = await faulty.commit(commit)
    assert retry.result == "already_committed"
    assert retry.cost == "0.000120000"  # 800 input tokens of small at 0.15 per million
    entries = await store.client.xrange(store.layout.stream_of("acme"))
    debits = [f for _, f in entries if f[b"kind"] == b"debit" and f[b"event_id"] == rid.encode()]
    assert len(debits) == 1


async def test_a_release_of_unknown_outcome_is_applied_once(
    faulty: Service, service: Service, proxy: FaultProxy
) -> None:
    held_before = await _held(service)
    rid = (await faulty.reserve(_reserve("r-1"))).reservation_id or ""
    proxy.stall(True)
    with pytest.raises(OutcomeUnknown):
        await faulty.release(ReleaseRequest(reservation_id=rid))
    proxy.stall(False)
    await _until(lambda: _settled(faulty))
    assert (await faulty.release(ReleaseRequest(reservation_id=rid))).result == "already_released"
    assert await _held(service) == held_before
