"""Deadlines over gRPC.

* A call whose deadline has already passed when it is made fails with DEADLINE_EXCEEDED and
  moves nothing: no hold, no event, and its idempotency key stays free for the retry.
* A request that reaches the servicer with no time left is aborted with DEADLINE_EXCEEDED
  before the service runs (tested on the servicer itself, deterministically).
* A near-zero deadline (1 ns, 1 us) is a race gRPC does not make atomic: grpc-core rounds the
  deadline it sends, so the server may still see time left and place the hold while the client
  already reports DEADLINE_EXCEEDED. What holds then is idempotency: the retry with the same
  key gets the first answer, and every key holds exactly once.
"""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from sidecar.client import GrpcClient
from sidecar.rpc.gen.creditgate.v1 import creditgate_pb2 as pb
from sidecar.rpc.servicer import ADMIN_ROUTES, PUBLIC_ROUTES, sidecar_servicer
from sidecar.server import Sidecar
from sidecar.store.redis_store import RedisStore
from tests.rpc.conftest import ADMIN_TOKEN, Stubs, cost, events_key, nanos, seed, snapshot

pytestmark = pytest.mark.redis

MODEL = "gpt-4o-mini"
WORST = {"input_tokens": 1200, "output_tokens": 800}
HOLD_NANOS = nanos(cost(MODEL, WORST))


def reserve(key: str) -> pb.ReserveRequest:
    return pb.ReserveRequest(
        customer="acme", team="eng", feature="chat", model=MODEL, units=WORST, idempotency_key=key
    )


async def idempotency_records(store: RedisStore, key: str) -> list[bytes]:
    """The keys, and fields of hashes, that remember an idempotency key, found by pattern (not
    by the sidecar's own key builder)."""
    client = store.client
    found = [k async for k in client.scan_iter(match=f"*{key}*", count=1000)]
    async for name in client.scan_iter(_type="hash", count=1000):
        found += [field async for field, _ in client.hscan_iter(name, match=f"*{key}*")]
    return found


@pytest.mark.parametrize("timeout", [-1.0, -1e-3])
async def test_an_expired_deadline_moves_nothing_and_leaves_the_key_free(
    stubs: Stubs, store: RedisStore, grpc_client: GrpcClient, timeout: float
) -> None:
    await seed(grpc_client, grants={"paid": "5"})
    before = await snapshot(stubs, store)
    for _ in range(3):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stubs.public.Reserve(reserve("dl-1"), timeout=timeout)
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert await snapshot(stubs, store) == before
    assert await idempotency_records(store, "dl-1") == []

    # The same key with a normal deadline is a first attempt: allowed, exactly one hold.
    first = await stubs.public.Reserve(reserve("dl-1"), timeout=5)
    assert (first.allowed, first.reason, first.held_nanos) == (True, pb.REASON_OK, HOLD_NANOS)
    again = await stubs.public.Reserve(reserve("dl-1"), timeout=5)
    assert again == first
    after = await snapshot(stubs, store)
    assert after.balance.held_nanos == HOLD_NANOS
    assert after.balance.balance_nanos == before.balance.balance_nanos - HOLD_NANOS
    assert len(await idempotency_records(store, "dl-1")) == 1


async def test_expired_commit_and_release_leave_the_hold_as_it_was(
    stubs: Stubs, store: RedisStore, grpc_client: GrpcClient
) -> None:
    await seed(grpc_client, grants={"paid": "5"})
    held = await stubs.public.Reserve(reserve("dl-2"), timeout=5)
    before = await snapshot(stubs, store)
    assert before.balance.held_nanos == HOLD_NANOS
    calls: list[tuple[Any, Any]] = [
        (stubs.public.Commit, pb.CommitRequest(reservation_id=held.reservation_id, units=WORST)),
        (stubs.public.Release, pb.ReleaseRequest(reservation_id=held.reservation_id)),
    ]
    for method, request in calls:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await method(request, timeout=-1)
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert await snapshot(stubs, store) == before
    # Still committable, once: the expired calls neither settled nor voided it.
    done = await stubs.public.Commit(calls[0][1], timeout=5)
    assert (done.result, done.cost_nanos) == (pb.COMMIT_RESULT_COMMITTED, HOLD_NANOS)
    assert await store.client.xlen(events_key("acme")) == before.events + 1


@pytest.mark.parametrize("timeout", [1e-9, 1e-6])
async def test_a_near_zero_deadline_never_holds_twice(
    stubs: Stubs, store: RedisStore, grpc_client: GrpcClient, timeout: float
) -> None:
    await seed(grpc_client, grants={"paid": "5"})
    before = await snapshot(stubs, store)
    calls = 30
    first: dict[str, Any] = {}
    failures: list[grpc.StatusCode] = []
    for i in range(calls):
        key = f"nz-{i}"
        try:
            first[key] = await stubs.public.Reserve(reserve(key), timeout=timeout)
        except grpc.aio.AioRpcError as error:
            failures.append(error.code())
    assert set(failures) <= {grpc.StatusCode.DEADLINE_EXCEEDED}
    assert len(first) + len(failures) == calls
    # Whatever each near-zero call did, the retry with its key and a sane deadline settles it:
    # the first answer where the client saw one, and exactly one hold per key in all cases.
    for i in range(calls):
        key = f"nz-{i}"
        retry = await stubs.public.Reserve(reserve(key), timeout=5)
        assert (retry.allowed, retry.held_nanos) == (True, HOLD_NANOS)
        if key in first:
            assert retry == first[key]
    after = await snapshot(stubs, store)
    assert after.balance.held_nanos == calls * HOLD_NANOS
    assert after.balance.balance_nanos == before.balance.balance_nanos - calls * HOLD_NANOS
    assert after.events == before.events  # a reserve appends no consumption event


class _Aborted(Exception):
    pass


class FakeContext:
    """The slice of grpc.aio.ServicerContext the servicer uses, with a chosen time left."""

    def __init__(self, remaining: float | None, metadata: tuple[tuple[str, str], ...] = ()) -> None:
        self.remaining = remaining
        self.metadata = metadata
        self.aborted: tuple[grpc.StatusCode, str] | None = None

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self.metadata

    def time_remaining(self) -> float | None:
        return self.remaining

    def set_trailing_metadata(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self.trailing = metadata

    async def abort(
        self, code: grpc.StatusCode, details: str = "", trailing_metadata: Any = ()
    ) -> None:
        self.aborted = (code, details)
        raise _Aborted(details)


@pytest.mark.parametrize("remaining", [0.0, -0.25])
async def test_the_servicer_refuses_work_whose_deadline_passed_before_it_started(
    sidecar: Sidecar, stubs: Stubs, store: RedisStore, grpc_client: GrpcClient, remaining: float
) -> None:
    """The server-side guard itself, deterministically: a request that arrives with no time
    left is aborted with DEADLINE_EXCEEDED before the service runs."""
    await seed(grpc_client, grants={"paid": "5"})
    public = sidecar_servicer(sidecar.service, PUBLIC_ROUTES, max_message_bytes=65_536)
    admin = sidecar_servicer(
        sidecar.service, ADMIN_ROUTES, max_message_bytes=65_536, admin_token=ADMIN_TOKEN
    )
    auth = (("authorization", f"Bearer {ADMIN_TOKEN}"),)
    before = await snapshot(stubs, store)
    calls: list[tuple[Any, Any, tuple[tuple[str, str], ...]]] = [
        (public.Reserve, reserve("dl-3"), ()),  # type: ignore[attr-defined]
        (public.Check, pb.CheckRequest(customer="acme", feature="chat"), ()),  # type: ignore[attr-defined]
        (admin.Grant, pb.GrantRequest(customer="acme", credit_type="paid",  # type: ignore[attr-defined]
                                      amount_nanos=10**9, idempotency_key="dl-g"), auth),
        (admin.SetBudget, pb.SetBudgetRequest(customer="acme", limit_nanos=1), auth),  # type: ignore[attr-defined]
    ]  # fmt: skip
    for method, request, metadata in calls:
        context = FakeContext(remaining, metadata)
        with pytest.raises(_Aborted):
            await method(request, context)
        assert context.aborted is not None
        assert context.aborted[0] == grpc.StatusCode.DEADLINE_EXCEEDED
    assert await snapshot(stubs, store) == before
    assert await idempotency_records(store, "dl-3") == []
    assert await idempotency_records(store, "dl-g") == []

    # The control: the same call with time left (or no deadline) is served.
    for left in (5.0, None):
        answer = await public.Reserve(reserve("dl-3"), FakeContext(left))  # type: ignore[attr-defined]
        assert (answer.allowed, answer.held_nanos) == (True, HOLD_NANOS)
    assert (await snapshot(stubs, store)).balance.held_nanos == HOLD_NANOS
