"""Fail-open per feature: while Redis is unreachable (a loopback proxy that closes every
connection in front of a real valkey), a feature with ``on_store_unavailable: allow`` is
decided by the sidecar within its overdraft, every such call is spooled durably, and once
Redis is back the spool is applied once: the money in Redis is exactly what was answered."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from bench.faults import FaultProxy
from sidecar.errors import StoreError
from sidecar.reservations import new_reservation_id
from sidecar.service import Service
from sidecar.service.spool import Spool
from sidecar.store.redis_store import RedisStore
from sidecar.wire import (
    BalanceResponse,
    BudgetScope,
    CommitRequest,
    ReleaseRequest,
    ReserveRequest,
    SetBudgetRequest,
)
from tests.conftest import Clock, Setup

pytestmark = pytest.mark.redis

DEADLINE_S = 0.3
DRAINED_WITHIN_S = 30.0
"""How long the spool may take to drain once Redis is back; only a bug takes this long."""
HOLD = Decimal("0.00015")
"""What 1000 input tokens of small hold (0.15 per million)."""


def _reserve(key: str, feature: str = "assist", tokens: int = 1000) -> ReserveRequest:
    return ReserveRequest(
        customer="acme", feature=feature, model="small", units={"input_tokens": tokens},
        idempotency_key=key,
    )  # fmt: skip


def _commit(rid: str | None, tokens: int = 800) -> CommitRequest:
    return CommitRequest(reservation_id=rid or "", units={"input_tokens": tokens})


async def _sidecar(proxy: FaultProxy, service: Service, clock: Clock, spool: Path) -> Service:
    store = RedisStore(proxy.url, timeout_s=DEADLINE_S, deadline_s=DEADLINE_S)
    await store.agree_layout()
    sidecar = Service(store, service.catalog, clock=clock, spool=Spool(str(spool)))
    await sidecar.fallback.load()
    return sidecar


async def _stop(sidecar: Service) -> None:
    await sidecar.close()
    await sidecar.store.close()


@pytest.fixture
async def faulty(
    proxy: FaultProxy, service: Service, clock: Clock, setup_customer: Setup, tmp_path: Path
) -> AsyncIterator[Service]:
    """A sidecar through the proxy, with a durable spool; the customer is read (and so known
    to it) first."""
    await setup_customer(grants={"paid": "1"})
    sidecar = await _sidecar(proxy, service, clock, tmp_path)
    assert (await sidecar.reserve(_reserve("warm"))).allowed
    yield sidecar
    await _stop(sidecar)


async def _drained(sidecar: Service) -> None:
    deadline = time.monotonic() + DRAINED_WITHIN_S
    while len(sidecar.fallback.spool) or len(sidecar.fallback.overdraft):
        assert time.monotonic() < deadline, "the spool did not drain"
        await asyncio.sleep(0.05)


def _credits(balance: BalanceResponse) -> Decimal:
    return sum((Decimal(b.amount) for b in balance.buckets), Decimal(0))


async def _debits(store: RedisStore) -> dict[bytes, dict[bytes, bytes]]:
    entries = await store.client.xrange(store.layout.stream_of("acme"))
    return {f[b"event_id"]: f for _, f in entries if f[b"kind"] == b"debit"}


async def test_while_redis_is_down_allow_features_answer_within_their_overdraft(
    faulty: Service, service: Service, store: RedisStore, proxy: FaultProxy
) -> None:
    before = await service.balance("acme")
    proxy.down(True)
    denied = await faulty.reserve(_reserve("chat-1", feature="chat"))
    assert (denied.allowed, denied.reason, denied.decided_by) == (
        False, "store_unavailable", "store",
    )  # fmt: skip
    answers = [await faulty.reserve(_reserve(f"a-{i}")) for i in range(7)]
    assert [a.allowed for a in answers] == [True] * 6 + [False]  # 6 x 0.00015 <= 0.001
    assert {a.decided_by for a in answers} == {"fallback"}
    assert (answers[6].reason, answers[6].scope) == ("store_unavailable", "fallback/overdraft")
    too_big = await faulty.reserve(_reserve("big", tokens=4000))  # 0.0006 > 0.0005 per call
    assert (too_big.allowed, too_big.scope) == (False, "fallback/overdraft_per_call")
    retry = await faulty.reserve(_reserve("a-0"))
    assert retry.reservation_id == answers[0].reservation_id  # a retry is the first answer

    rids = [a.reservation_id for a in answers[:6]]
    committed = [await faulty.commit(_commit(rid)) for rid in rids[:3]]
    assert {(c.result, c.cost, c.released, c.decided_by) for c in committed} == {
        ("committed", "0.000120000", "0.000030000", "fallback")
    }
    assert (await faulty.commit(_commit(rids[0]))).result == "already_committed"
    released = await faulty.release(ReleaseRequest(reservation_id=rids[3] or ""))
    assert (released.result, released.released) == ("released", "0.000150000")
    # Commits free overdraft: three at 0.00012 and two holds of 0.00015 leave 0.00034.
    assert (await faulty.reserve(_reserve("a-7"))).allowed

    proxy.down(False)
    await _drained(faulty)
    after = await service.balance("acme")
    spent = _credits(before) - _credits(after)
    assert spent == 3 * Decimal("0.00012")  # the three commits, once each
    # Held: the warm-up hold, and three fallback holds still open (a-4, a-5, a-7).
    assert Decimal(after.held) == 4 * HOLD
    debits = await _debits(store)
    fallback = {rid for rid, f in debits.items() if f.get(b"decided_by") == b"fallback"}
    assert fallback == {(rid or "").encode() for rid in rids[:3]}
    # The replayed holds are Redis's now: committed on the live path, as any other.
    late = await faulty.commit(_commit(rids[4]))
    assert (late.result, late.decided_by) == ("committed", "store")


async def test_a_hold_placed_by_redis_is_committed_in_fallback_and_applied_later(
    faulty: Service, service: Service, store: RedisStore, proxy: FaultProxy
) -> None:
    live = await faulty.reserve(_reserve("live"))
    assert live.decided_by == "store"
    proxy.down(True)
    out = await faulty.commit(_commit(live.reservation_id))
    assert (out.result, out.cost, out.decided_by) == ("committed", "0.000120000", "fallback")
    chat = await faulty.reserve(_reserve("chat-live", feature="chat"))
    proxy.down(False)
    assert chat.reason == "store_unavailable"
    await _drained(faulty)
    debit = (await _debits(store))[(live.reservation_id or "").encode()]
    assert (debit[b"cost"], debit.get(b"decided_by")) == (b"120000", None)  # Redis decided it
    again = await faulty.commit(_commit(live.reservation_id))
    assert (again.result, again.cost) == ("already_committed", "0.000120000")


async def test_what_is_replayed_is_charged_past_a_cap_redis_would_have_refused(
    faulty: Service, service: Service, store: RedisStore, proxy: FaultProxy
) -> None:
    day = SetBudgetRequest(scope=BudgetScope(), period="day", limit="0.0002")
    await service.set_budget("acme", day)
    proxy.down(True)
    rids = [(await faulty.reserve(_reserve(f"cap-{i}"))).reservation_id for i in range(3)]
    for rid in rids:
        assert (await faulty.commit(_commit(rid))).result == "committed"
    proxy.down(False)
    await _drained(faulty)
    debits = await _debits(store)
    assert sum(int(debits[(rid or "").encode()][b"cost"]) for rid in rids) == 3 * 120_000
    budget = next(b for b in (await service.budgets("acme")).budgets if b.period == "day")
    assert Decimal(budget.used) == 3 * Decimal("0.00012")  # past the 0.0002 cap, recorded
    assert (await faulty.reserve(_reserve("after"))).reason == "budget_exceeded"


async def test_a_full_spool_turns_allow_into_deny(
    proxy: FaultProxy, service: Service, clock: Clock, setup_customer: Setup, tmp_path: Path
) -> None:
    await setup_customer(grants={"paid": "1"})
    store = RedisStore(proxy.url, timeout_s=DEADLINE_S, deadline_s=DEADLINE_S)
    await store.agree_layout()
    sidecar = Service(store, service.catalog, clock=clock, spool=Spool(None, max_entries=2))
    try:
        assert (await sidecar.reserve(_reserve("warm"))).allowed
        proxy.down(True)
        answers = [await sidecar.reserve(_reserve(f"f-{i}")) for i in range(3)]
        assert [a.allowed for a in answers] == [True, True, False]
        assert answers[2].scope == "fallback/spool"
        assert sidecar.fallback.spool.full == 1
        proxy.down(False)
        await _drained(sidecar)
    finally:
        await _stop(sidecar)


async def test_a_sidecar_restarted_with_a_spool_replays_it_once(
    faulty: Service, service: Service, store: RedisStore, proxy: FaultProxy, clock: Clock,
    tmp_path: Path,
) -> None:  # fmt: skip
    before = await service.balance("acme")
    proxy.down(True)
    rids = [(await faulty.reserve(_reserve(f"s-{i}"))).reservation_id for i in range(2)]
    assert (await faulty.commit(_commit(rids[0]))).result == "committed"
    await faulty.close()  # Redis still down: the spool keeps all three entries
    left = Spool(str(tmp_path))
    assert len(left) == 3
    await left.close()

    proxy.down(False)
    again = await _sidecar(proxy, service, clock, tmp_path)  # replays at start
    try:
        await _drained(again)
        assert (await again.commit(_commit(rids[0]))).result == "already_committed"
        assert (await again.reserve(_reserve("s-1"))).reservation_id == rids[1]
        assert (await again.commit(_commit(rids[1]))).decided_by == "store"
        await again.fallback.replay()  # a second replay of an empty spool moves nothing
    finally:
        await _stop(again)
    after = await service.balance("acme")
    assert _credits(before) - _credits(after) == 2 * Decimal("0.00012")
    mine = {(rid or "").encode() for rid in rids}
    assert len([rid for rid in await _debits(store) if rid in mine]) == 2


async def test_a_key_another_sidecar_held_is_settled_through_that_hold_after_a_restart(
    faulty: Service, service: Service, store: RedisStore, proxy: FaultProxy, clock: Clock,
    tmp_path: Path,
) -> None:  # fmt: skip
    """Cut off from Redis, this sidecar answers key k in fallback (a); the caller's retry with
    k reaches another sidecar, which holds it in Redis (b). The replay finds b for k, so a is
    b: a commit of a, made after the replay and after this sidecar restarted, charges b, once."""
    before = await service.balance("acme")
    proxy.down(True)
    here = await faulty.reserve(_reserve("k"))
    assert (here.allowed, here.decided_by) == (True, "fallback")
    there = await service.reserve(_reserve("k"))  # the other sidecar, on the live path
    assert there.decided_by == "store"
    assert there.reservation_id != here.reservation_id
    proxy.down(False)
    await _drained(faulty)
    await faulty.close()

    again = await _sidecar(proxy, service, clock, tmp_path)
    try:
        done = await again.commit(_commit(here.reservation_id))
        assert (done.result, done.cost, done.decided_by) == ("committed", "0.000120000", "store")
        assert (await again.commit(_commit(here.reservation_id))).result == "already_committed"
        late = await service.commit(_commit(there.reservation_id))
        assert late.result == "already_committed"  # one call, charged once
    finally:
        await _stop(again)
    after = await service.balance("acme")
    assert _credits(before) - _credits(after) == Decimal("0.00012")
    assert Decimal(after.held) == HOLD  # only the warm-up hold: b is settled
    debits = await _debits(store)
    assert (there.reservation_id or "").encode() in debits
    assert (here.reservation_id or "").encode() not in debits


async def test_a_customer_never_read_by_this_sidecar_is_not_decided_in_fallback(
    proxy: FaultProxy, service: Service, clock: Clock, setup_customer: Setup, tmp_path: Path
) -> None:
    await setup_customer(grants={"paid": "1"})
    sidecar = await _sidecar(proxy, service, clock, tmp_path)
    try:
        proxy.down(True)
        out = await sidecar.reserve(_reserve("cold"))
        assert (out.allowed, out.reason, out.decided_by) == (False, "store_unavailable", "store")
        with pytest.raises(StoreError):
            await sidecar.commit(_commit(new_reservation_id("acme", clock())))
    finally:
        proxy.down(False)
        await _stop(sidecar)
