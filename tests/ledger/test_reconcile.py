"""Reconcile names every difference between Redis and the ledger, and nothing on a clean state."""

from __future__ import annotations

import pytest

from sidecar.catalog import Catalog
from sidecar.ledger.db import Pool, load_catalogs
from sidecar.ledger.reconcile import Difference, Report, reconcile
from sidecar.service import Service
from sidecar.store.redis_store import RedisStore
from sidecar.wire import ReserveRequest
from tests.conftest import Clock
from tests.ledger.conftest import Call, drain, worker
from tests.ledger.scenario import play

pytestmark = [pytest.mark.redis, pytest.mark.postgres]


async def check(store: RedisStore, pool: Pool, catalog: Catalog, clock: Clock) -> Report:
    async with pool.acquire() as db:
        return await reconcile(
            store.client, store.layout, db, ["acme", "globex"], catalogs=await load_catalogs(db),
            catalog=catalog, now_ms=clock.now_ms,
        )  # fmt: skip


async def test_clean_state_reports_nothing_and_injected_drift_is_named(
    store: RedisStore, pool: Pool, service: Service, clock: Clock, call: Call,
    ledger_catalog: Catalog,
) -> None:  # fmt: skip
    await play(service, clock, call)
    # A hold in flight is not money: it makes no difference.
    hold = await service.reserve(
        ReserveRequest(customer="acme", feature="chat", model="small", team="eng",
                       units={"input_tokens": 10_000}, idempotency_key="in-flight")
    )  # fmt: skip
    assert hold.allowed
    await drain(worker(store, pool))
    clean = await check(store, pool, ledger_catalog, clock)
    assert clean.customers == 2
    assert clean.differences == []
    assert clean.unsettled == {}

    client = store.client
    await client.hincrby(store.layout.key("acme", "u:m202611"), "team:eng|used", 5)
    await client.hset(store.layout.key("acme", "u:d20261119"), "team:ghost|used", "42")
    (member,) = [
        m for m in await client.hkeys(store.layout.key("acme", "bucket")) if b"|paid|" in m
    ]
    paid = int(await client.hget(store.layout.key("acme", "bucket"), member) or 0)
    await client.hset(store.layout.key("acme", "bucket"), member, str(paid + 1))
    await client.hdel(store.layout.key("acme", "budgets"), "team:eng|day")
    await client.hset(store.layout.key("globex", "customer"), "plan", "test")
    drifted = await check(store, pool, ledger_catalog, clock)

    m202611 = await client.hget(store.layout.key("acme", "u:m202611"), "team:eng|used")
    assert m202611 is not None
    team_month = int(m202611)
    assert drifted.differences == [
        Difference(customer="acme", key="bucket", field=member.decode(),
                   redis=str(paid + 1), ledger=str(paid)),
        Difference(customer="acme", key="budgets", field="team:eng|day",
                   redis=None, ledger="5000000000|hard"),
        Difference(customer="acme", key="u:d20261119", field="team:ghost|used",
                   redis="42", ledger=None),
        Difference(customer="acme", key="u:m202611", field="team:eng|used",
                   redis=str(team_month), ledger=str(team_month - 5)),
        Difference(customer="globex", key="customer", field="plan", redis="test", ledger="overage"),
    ]  # fmt: skip


async def test_events_not_yet_ingested_are_reported_as_unsettled(
    store: RedisStore, pool: Pool, service: Service, clock: Clock, call: Call,
    ledger_catalog: Catalog,
) -> None:  # fmt: skip
    await play(service, clock, call)
    await drain(worker(store, pool))
    await call(units={"input_tokens": 1000}, team="eng")  # committed, not yet in the ledger
    report = await check(store, pool, ledger_catalog, clock)
    assert report.unsettled == {"acme": 1}
    assert {(d.key, d.field) for d in report.differences} >= {("u:life", "customer|used")}
    await drain(worker(store, pool))
    settled = await check(store, pool, ledger_catalog, clock)
    assert (settled.differences, settled.unsettled) == ([], {})
