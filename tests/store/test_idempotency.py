"""Invariant 3, idempotent: a retry returns the first answer and moves nothing twice."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from sidecar.errors import NotFound
from sidecar.service import Service
from sidecar.store.redis_store import RedisStore
from sidecar.wire import CommitRequest, GrantRequest, ReleaseRequest, ReserveRequest
from tests.conftest import Setup

pytestmark = pytest.mark.redis

RESERVE = ReserveRequest(
    customer="acme", feature="steps", model="small", units={"requests": 1}, idempotency_key="once"
)


async def _debits(store: RedisStore) -> list[dict[bytes, bytes]]:
    entries = await store.client.xrange(store.layout.stream_of("acme"))
    return [fields for _, fields in entries if fields[b"kind"] == b"debit"]


async def test_concurrent_reserve_retries_place_one_hold(
    sidecars: list[Service], service: Service, setup_customer: Setup
) -> None:
    await setup_customer(grants={"paid": "1"})
    answers = await asyncio.gather(*(sidecars[i % 4].reserve(RESERVE) for i in range(40)))
    assert len({a.reservation_id for a in answers}) == 1
    assert all(a == answers[0] for a in answers)
    state = await service.balance("acme")
    assert Decimal(state.held) == Decimal("0.01")


async def test_concurrent_commit_retries_charge_once(
    sidecars: list[Service], service: Service, store: RedisStore, setup_customer: Setup
) -> None:
    await setup_customer(grants={"paid": "1"})
    rid = (await service.reserve(RESERVE)).reservation_id or ""
    commit = CommitRequest(reservation_id=rid, units={"requests": 1})
    answers = await asyncio.gather(*(sidecars[i % 4].commit(commit) for i in range(40)))
    results = [a.result for a in answers]
    assert results.count("committed") == 1
    assert results.count("already_committed") == 39
    assert {(a.cost, a.released, a.burned[0].amount) for a in answers} == {
        ("0.010000000", "0.000000000", "0.010000000")
    }
    assert Decimal((await service.balance("acme")).balance) == Decimal("0.99")
    assert len(await _debits(store)) == 1


async def test_concurrent_release_retries_and_crossed_resolutions(
    sidecars: list[Service], service: Service, store: RedisStore, setup_customer: Setup
) -> None:
    await setup_customer(grants={"paid": "1"})
    rid = (await service.reserve(RESERVE)).reservation_id or ""
    answers = await asyncio.gather(
        *(sidecars[i % 4].release(ReleaseRequest(reservation_id=rid)) for i in range(40))
    )
    results = [a.result for a in answers]
    assert results.count("released") == 1
    assert results.count("already_released") == 39
    late = await service.commit(CommitRequest(reservation_id=rid, units={"requests": 1}))
    assert late.result == "already_released"
    state = await service.balance("acme")
    assert (Decimal(state.balance), Decimal(state.held)) == (Decimal("1"), 0)
    assert await _debits(store) == []

    other = ReserveRequest(**{**_fields(RESERVE), "idempotency_key": "twice"})
    rid = (await service.reserve(other)).reservation_id or ""
    await service.commit(CommitRequest(reservation_id=rid, units={"requests": 1}))
    assert (await service.release(ReleaseRequest(reservation_id=rid))).result == "already_committed"


async def test_grant_retry_with_same_key_grants_once(
    sidecars: list[Service], service: Service, setup_customer: Setup
) -> None:
    await setup_customer()
    grant = GrantRequest(credit_type="paid", amount="5", idempotency_key="invoice-17")
    answers = await asyncio.gather(*(sidecars[i % 4].grant("acme", grant) for i in range(20)))
    assert [a.result for a in answers].count("granted") == 1
    assert len({a.grant_id for a in answers}) == 1
    assert Decimal((await service.balance("acme")).balance) == 5


async def test_unknown_reservation_is_not_found(service: Service, setup_customer: Setup) -> None:
    await setup_customer()
    for rid in ("nope", "r_01ARZ3NDEKTSV4RRFFQ69G5FAV_acme"):
        with pytest.raises(NotFound) as error:
            await service.commit(CommitRequest(reservation_id=rid, units={}))
        assert error.value.field == "reservation_id"
        with pytest.raises(NotFound):
            await service.release(ReleaseRequest(reservation_id=rid))


def _fields(request: ReserveRequest) -> dict[str, object]:
    return {f: getattr(request, f) for f in request.__struct_fields__}
