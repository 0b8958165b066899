"""Redis losing its data is detected, not absorbed: the ledger fences a Redis that no longer
holds the generation it recorded, no known customer is told it does not exist, reconcile
names the last event it had stored and exits non-zero, and rebuild --all serves again with
the idempotency records of the commits the ledger knows of."""

from __future__ import annotations

import pytest

from sidecar.catalog import Catalog
from sidecar.ledger.db import Pool
from sidecar.ledger.generation import Found, Recorded, judge, latest, watch_once
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
    ],
)  # fmt: skip
def test_the_verdict_on_each_generation_found(
    recorded: Recorded | None, found: Found, action: str
) -> None:
    assert judge(recorded, found).action == action


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
    assert await store.client.hexists(layout.LAYOUT_KEY, layout.LAYOUT_LOST)
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
