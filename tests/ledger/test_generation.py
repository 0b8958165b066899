"""Redis losing its data is detected, not absorbed: the ledger fences a Redis that no longer
holds the generation it recorded, no known customer is told it does not exist, reconcile
names the last event it had stored and exits non-zero, and rebuild --all serves again with
the idempotency records of the commits the ledger knows of."""

from __future__ import annotations

from typing import Any

import pytest

from sidecar.catalog import Catalog
from sidecar.ledger.db import Pool
from sidecar.ledger.generation import Epochs, Found, Recorded, judge, latest, watch_once
from sidecar.service import Service
from sidecar.store import layout
from sidecar.store.redis_store import RedisStore
from sidecar.wire import CommitRequest, GrantRequest, ReserveRequest, UpsertCustomerRequest
from tests.conftest import REDIS_TIMEOUT_S
from tests.ledger.conftest import CATALOG, drain, worker
from tests.ledger.test_cli import creditgate

pytestmark = [pytest.mark.redis, pytest.mark.postgres]

SEEN = Recorded(generation="g1", state="seen", detail="")


@pytest.mark.parametrize(
    ("recorded", "found", "action"),
    [
        (None, Found(generation=None, lost=None, unmarked=(0, 1)), "mark"),
        (None, Found(generation="g1", lost=None, unmarked=()), "adopt"),
        (None, Found(generation="g1", lost=None, unmarked=(3,)), "ok"),  # being written
        (SEEN, Found(generation="g1", lost=None, unmarked=()), "ok"),
        (SEEN, Found(generation=None, lost=None, unmarked=(0, 1)), "lose"),  # empty
        (SEEN, Found(generation="g2", lost=None, unmarked=()), "lose"),  # marked anew
        (SEEN, Found(generation="g1", lost=None, unmarked=(7,)), "lose"),  # one node empty
        (SEEN, Found(generation=None, lost="fenced", unmarked=(0,)), "lose"),
        (Recorded(generation="g1", state="lost", detail="x"), Found(
            generation="g2", lost=None, unmarked=()), "fenced"),  # until a rebuild
        (Recorded(generation="g3", state="rebuilt", detail=""), Found(
            generation="g3", lost=None, unmarked=()), "ok"),
        (SEEN, Found(generation="g1", lost=None, unmarked=(), rolled_back=(2,)), "lose"),
    ],
)  # fmt: skip
def test_the_verdict_on_each_generation_found(
    recorded: Recorded | None, found: Found, action: str
) -> None:
    assert judge(recorded, found).action == action


def test_epochs_that_come_back_no_higher_are_rolled_back_within_a_generation() -> None:
    epochs = Epochs()
    assert epochs.advance("g1", [4, 9]) == ()  # the first look: nothing to compare with
    assert epochs.advance("g1", [5, 11]) == ()  # another ledger incremented shard 1 too
    assert epochs.advance("g1", [6, 11]) == (1,)  # shard 1 lost an increment it had answered
    assert epochs.advance("g1", [3, 12]) == (0,)
    assert epochs.advance("g2", [1, 1]) == ()  # a rebuild starts a generation afresh


async def _snapshot(client: Any) -> list[tuple[bytes, int, bytes]]:
    """Every key with its remaining life and DUMP: a backup of Redis."""
    keys = [key async for key in client.scan_iter(count=1000)]
    return [(k, max(0, await client.pttl(k)), await client.dump(k)) for k in keys]


async def _restore(client: Any, snapshot: list[tuple[bytes, int, bytes]]) -> None:
    """Redis as it was at the snapshot: the backup restored."""
    await client.flushall()
    for key, ttl, value in snapshot:
        await client.restore(key, ttl, value, replace=True)


async def test_redis_rolled_back_to_an_older_copy_is_fenced_reported_and_rebuilt(
    redis_url: str, store: RedisStore, database: str, pool: Pool, ledger_catalog: Catalog
) -> None:
    service = Service(store, ledger_catalog)
    await service.upsert_customer("acme", UpsertCustomerRequest(plan="test"))
    await service.grant("acme", GrantRequest(credit_type="paid", amount="3", idempotency_key="k"))
    await drain(worker(store, pool))
    epochs = Epochs()  # the ledger service's: one per process
    async with pool.acquire() as db:
        assert (await watch_once(store.client, store.layout, db, epochs)).action == "adopt"
    backup = await _snapshot(store.client)

    hold = await service.reserve(_reserve("r-after-backup"))
    rid = hold.reservation_id or ""
    first = await service.commit(CommitRequest(reservation_id=rid, units={"input_tokens": 400}))
    await drain(worker(store, pool))  # the ledger stores it
    async with pool.acquire() as db:
        assert (await watch_once(store.client, store.layout, db, epochs)).action == "ok"

    await _restore(store.client, backup)  # the markers are back, the commit is not
    async with pool.acquire() as db:
        verdict = await watch_once(store.client, store.layout, db, epochs)
    assert verdict.action == "lose"
    assert "lost writes they had acknowledged" in verdict.why
    answer = await service.reserve(_reserve("r-on-the-copy"))
    assert (answer.allowed, answer.reason) == (False, "store_unavailable")

    where = ("--redis", redis_url, "--database-url", database, "--catalog", str(CATALOG))
    code, out, _ = await creditgate("ledger", "reconcile", *where)
    assert code == 1
    assert out.startswith(f"Redis lost state after event {rid} (customer acme")
    code, _, err = await creditgate("ledger", "rebuild", *where, "--all")
    assert code == 0, err
    code, out, err = await creditgate("ledger", "reconcile", *where)
    assert (code, out) == (0, ""), err
    again = await service.commit(CommitRequest(reservation_id=rid, units={"input_tokens": 400}))
    assert (again.result, again.cost) == ("already_committed", first.cost)
    async with pool.acquire() as db:  # a new generation: its epochs are compared afresh
        assert (await watch_once(store.client, store.layout, db, epochs)).action == "ok"
        assert (await watch_once(store.client, store.layout, db, epochs)).action == "ok"


def _reserve(key: str, customer: str = "acme") -> ReserveRequest:
    return ReserveRequest(
        customer=customer, feature="chat", model="small", units={"input_tokens": 500},
        idempotency_key=key,
    )  # fmt: skip


async def test_redis_restarted_empty_is_fenced_reported_and_rebuilt(
    redis_url: str, store: RedisStore, database: str, pool: Pool, ledger_catalog: Catalog
) -> None:
    service = Service(store, ledger_catalog)  # the wall clock, as the commands use
    await service.upsert_customer("acme", UpsertCustomerRequest(plan="test"))
    await service.grant("acme", GrantRequest(credit_type="paid", amount="3", idempotency_key="k"))
    await drain(worker(store, pool))
    async with pool.acquire() as db:
        assert (await watch_once(store.client, store.layout, db)).action == "adopt"
    shipped = await service.reserve(_reserve("r-shipped"))
    rid = shipped.reservation_id or ""
    first = await service.commit(CommitRequest(reservation_id=rid, units={"input_tokens": 400}))
    await drain(worker(store, pool))  # the last event the ledger stores
    for i in range(3):  # committed, never shipped: Redis loses them
        hold = await service.reserve(_reserve(f"r-unshipped-{i}"))
        done = await service.commit(
            CommitRequest(reservation_id=hold.reservation_id or "", units={"input_tokens": 400})
        )
        assert done.result == "committed"

    await store.client.flushall()  # the suite's own server: Redis restarted empty
    fresh = Service(store, ledger_catalog)  # a sidecar that never read acme
    for sidecar in (service, fresh):
        answer = await sidecar.reserve(_reserve("r-after"))
        assert (answer.allowed, answer.reason) == (False, "store_unavailable")

    where = ("--redis", redis_url, "--database-url", database, "--catalog", str(CATALOG))
    code, out, _ = await creditgate("ledger", "reconcile", *where)
    assert code == 1
    assert out.startswith(f"Redis lost state after event {rid} (customer acme")
    assert "Redis holds no generation" in out

    async with pool.acquire() as db:
        assert (await watch_once(store.client, store.layout, db)).action == "lose"
        recorded = await latest(db)
    assert recorded is not None
    assert recorded.state == "lost"
    assert rid in recorded.detail
    assert await store.client.hexists(layout.Layout().layout_key, layout.LAYOUT_LOST)
    restarted = RedisStore(redis_url, timeout_s=REDIS_TIMEOUT_S)
    try:
        await restarted.agree_layout()  # a sidecar starting on the fenced Redis marks nothing
        late = await Service(restarted, ledger_catalog).reserve(_reserve("r-late"))
        assert late.reason == "store_unavailable"
    finally:
        await restarted.close()

    code, _, err = await creditgate("ledger", "rebuild", *where, "--all")
    assert code == 0, err
    assert "rebuilt as generation" in err
    code, out, err = await creditgate("ledger", "reconcile", *where)
    assert (code, out) == (0, ""), err  # what was lost never reached the ledger: it agrees now

    # The commit the ledger knows of answers as before, and its reserve is not placed twice.
    again = await fresh.commit(CommitRequest(reservation_id=rid, units={"input_tokens": 400}))
    assert again.result == "already_committed"
    assert (again.cost, again.released, again.burned) == (first.cost, first.released, first.burned)
    replayed = await fresh.reserve(_reserve("r-shipped"))
    assert replayed.reservation_id == rid
    assert (await fresh.reserve(_reserve("r-new"))).allowed
    async with pool.acquire() as db:
        assert (await watch_once(store.client, store.layout, db)).action == "ok"
