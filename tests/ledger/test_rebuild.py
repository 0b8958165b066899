"""Flush Redis, rebuild from the ledger: balances, buckets, budgets and every counter equal what
they were, grants stay idempotent, and the ledger keeps ingesting the new streams."""

from __future__ import annotations

import msgspec
import pytest

from sidecar.access import OPERATOR
from sidecar.catalog import Catalog
from sidecar.errors import Unauthenticated
from sidecar.ledger.corrections import RefundRequest, refund
from sidecar.ledger.db import Connection, Pool, load_catalogs
from sidecar.ledger.rebuild import backfill_credentials, rebuild_customer, resume_serving
from sidecar.ledger.reconcile import reconcile
from sidecar.service import Service
from sidecar.store.layout import CUSTOMERS
from sidecar.store.redis_store import RedisStore
from sidecar.wire import (
    BudgetScope,
    GrantRequest,
    IssueProxyKeyRequest,
    IssueTokenRequest,
    SetAlertsRequest,
    SetBudgetRequest,
    UpsertCustomerRequest,
)
from tests.conftest import Clock
from tests.ledger.conftest import Call, drain, worker
from tests.ledger.scenario import money_state, play

pytestmark = [pytest.mark.redis, pytest.mark.postgres]


async def test_flush_then_rebuild_restores_balances_and_counters(
    store: RedisStore, pool: Pool, service: Service, clock: Clock, call: Call,
    ledger_catalog: Catalog,
) -> None:  # fmt: skip
    await play(service, clock, call)
    await drain(worker(store, pool))
    before = {c: await money_state(store, c) for c in ("acme", "globex")}
    balances = {c: msgspec.to_builtins(await service.balance(c)) for c in ("acme", "globex")}
    # The scenario reached every kind of state it is meant to.
    acme = before["acme"]
    assert {"customer", "bucket", "buckets", "budgets", "balance"} <= set(acme)
    assert {"u:d20261119", "u:m202611", "u:life", "s:run-1"} <= set(acme)
    assert "q:chat|used" in acme["u:m202611"]
    assert "q:tickets|used" in acme["u:d20261119"]
    assert acme["balance"]["frac"] != "0"  # 11 requests at 0.4 nano-credit: a remainder
    assert "overage|used" in before["globex"]["u:m202611"]
    assert any(k.startswith("idem:g:") for k in acme)

    await store.client.flushall()
    async with pool.acquire() as db:
        catalogs = await load_catalogs(db)
        for customer in ("acme", "globex"):
            await rebuild_customer(
                store.client, store.layout, db, customer, catalogs=catalogs, catalog=ledger_catalog,
                now_ms=clock.now_ms,
            )  # fmt: skip
        assert await resume_serving(store.client, store.layout, db) is None  # never recorded
    service.customers.invalidate("acme")
    service.customers.invalidate("globex")

    assert {c: await money_state(store, c) for c in ("acme", "globex")} == before
    after = {c: msgspec.to_builtins(await service.balance(c)) for c in ("acme", "globex")}
    assert after == balances
    assert await store.client.sismember(
        store.layout.shard_key(store.layout.shard("acme"), CUSTOMERS), "acme"
    )
    for name in ("u:d20261119", "u:m202611", "s:run-1"):  # they expire, as reserve.lua's do
        assert await store.client.pttl(store.layout.key("acme", name)) > 0
    async with pool.acquire() as db:
        report = await reconcile(
            store.client, store.layout, db, ["acme", "globex"], catalogs=catalogs,
            catalog=ledger_catalog, now_ms=clock.now_ms,
        )  # fmt: skip
    assert report.differences == []

    # Idempotency survives: the same grant, and the plan's monthly grant, move nothing twice.
    again = await service.grant(
        "acme", GrantRequest(credit_type="paid", amount="10", idempotency_key="p1")
    )
    assert again.result == "already_granted"
    await service.upsert_customer("acme", UpsertCustomerRequest(plan="test"))
    assert msgspec.to_builtins(await service.balance("acme")) == balances["acme"]

    # Calls go on, and the ledger ingests the new stream (its consumer group re-created).
    await call(units={"input_tokens": 10}, team="eng")
    # The retried grant's audit entry (the ledger keeps it once) and the debit; the same plan
    # again is a no-op.
    assert await drain(worker(store, pool, "w2")) == 2
    async with pool.acquire() as db:
        assert await db.fetchval("SELECT count(*) FROM usage_events") == 8


async def test_rebuild_refuses_a_customer_still_in_redis_unless_forced(
    store: RedisStore, pool: Pool, service: Service, clock: Clock, call: Call,
    ledger_catalog: Catalog,
) -> None:  # fmt: skip
    await play(service, clock, call)
    await drain(worker(store, pool))
    before = await money_state(store, "acme")
    await store.client.hset(store.layout.key("acme", "u:life"), "customer|used", "1")  # drifted
    async with pool.acquire() as db:
        catalogs = await load_catalogs(db)
        with pytest.raises(Exception, match="still has state in Redis"):
            await rebuild_customer(
                store.client, store.layout, db, "acme", catalogs=catalogs, catalog=ledger_catalog,
                now_ms=clock.now_ms,
            )  # fmt: skip
        await rebuild_customer(
            store.client, store.layout, db, "acme", catalogs=catalogs, catalog=ledger_catalog,
            now_ms=clock.now_ms, force=True,
        )  # fmt: skip
    assert await money_state(store, "acme") == before
    assert (
        await store.client.xlen(store.layout.stream_of("acme")) > 0
    )  # the stream is never touched


async def test_a_rebuild_restores_the_month_counter_graduated_tiers_are_read_from(
    store: RedisStore, pool: Pool, service: Service, clock: Clock, call: Call,
    ledger_catalog: Catalog,
) -> None:  # fmt: skip
    await service.upsert_customer("initech", UpsertCustomerRequest(plan="test"))
    await service.grant(
        "initech", GrantRequest(credit_type="paid", amount="1", idempotency_key="p")
    )
    for _ in range(3):  # 1200 tokens: 1000 at 2 per million, 200 at 1
        await call("initech", units={"input_tokens": 400}, model="graded")
    await drain(worker(store, pool))
    before = await money_state(store, "initech")
    assert before["u:m202611"]["tier:graded|input_tokens"] == "1200"

    await store.client.flushall()
    async with pool.acquire() as db:
        catalogs = await load_catalogs(db)
        await rebuild_customer(
            store.client, store.layout, db, "initech", catalogs=catalogs, catalog=ledger_catalog,
            now_ms=clock.now_ms,
        )  # fmt: skip
        await resume_serving(store.client, store.layout, db)
        report = await reconcile(
            store.client, store.layout, db, ["initech"], catalogs=catalogs,
            catalog=ledger_catalog, now_ms=clock.now_ms,
        )  # fmt: skip
    service.customers.invalidate("initech")
    assert await money_state(store, "initech") == before
    assert report.differences == []
    after = await call("initech", units={"input_tokens": 100}, model="graded")
    assert after.cost == "0.000100000"  # past the first tier: 1 per million, not 2


async def _rebuild_acme(
    store: RedisStore, db: Connection, catalog: Catalog, clock: Clock, *, force: bool = False
) -> None:
    await rebuild_customer(
        store.client, store.layout, db, "acme", catalogs=await load_catalogs(db),
        catalog=catalog, now_ms=clock.now_ms, force=force,
    )  # fmt: skip


async def test_a_rebuild_gives_back_credentials_and_alert_rules_and_revoked_stay_revoked(
    store: RedisStore, pool: Pool, service: Service, clock: Clock, ledger_catalog: Catalog
) -> None:
    """Redis flushed and rebuilt: an application's proxy key and a customer admin's token work
    again with the secrets they had (nothing to redeploy), a revoked key stays revoked, and the
    customer's own alert rules are back (one removed stays removed)."""
    await service.upsert_customer("acme", UpsertCustomerRequest(plan="test"))
    team = BudgetScope(team="eng")
    for request in (
        SetAlertsRequest(thresholds=["50%", "90%"], scope=team, period="day"),
        SetAlertsRequest(thresholds=["75%"], scope=team, period="day"),  # replaces it
        SetAlertsRequest(thresholds=["5"], target="balance"),
        SetAlertsRequest(thresholds=["80%"]),
        SetAlertsRequest(thresholds=[]),  # removes the customer's monthly one
    ):
        await service.set_alerts("acme", request)
    rules = msgspec.to_builtins(await service.alerts("acme"))
    app = await service.issue_proxy_key(
        "acme", IssueProxyKeyRequest(idempotency_key="app", team="eng", agent="bot")
    )
    old = await service.issue_proxy_key("acme", IssueProxyKeyRequest(idempotency_key="old"))
    await service.revoke_proxy_key("acme", old.key.id)
    admin = await service.issue_token(
        "acme", IssueTokenRequest(idempotency_key="admin", role="admin")
    )
    listed = msgspec.to_builtins(await service.proxy_keys("acme"))
    await drain(worker(store, pool))

    await store.client.flushall()
    async with pool.acquire() as db:
        await _rebuild_acme(store, db, ledger_catalog, clock)
    fresh = Service(store, service.catalog, clock=clock)  # nothing cached
    key = await fresh.keyring.check(f"Bearer {app.secret}", clock.now_ms)
    assert (key.id, key.customer, key.team, key.agent) == (app.key.id, "acme", "eng", "bot")
    with pytest.raises(Unauthenticated, match="revoked"):
        await fresh.keyring.check(f"Bearer {old.secret}", clock.now_ms)
    token = await fresh.tokens.check(f"Bearer {admin.secret}", clock.now_ms)
    assert (token.id, token.role) == (admin.token.id, "admin")
    assert msgspec.to_builtins(await fresh.proxy_keys("acme")) == listed
    assert msgspec.to_builtins(await fresh.alerts("acme")) == rules
    mine = [r["thresholds"] for r in rules["rules"] if r["source"] == "customer"]
    assert sorted(mine) == [["5.000000000"], ["75%"]]
    async with pool.acquire() as db:
        report = await reconcile(
            store.client, store.layout, db, ["acme"], catalogs=await load_catalogs(db),
            catalog=ledger_catalog, now_ms=clock.now_ms,
        )  # fmt: skip
    assert report.differences == []

    # Revoked in Redis, and not yet in the ledger: a rebuild over it does not undo that.
    await fresh.revoke_proxy_key("acme", app.key.id)
    async with pool.acquire() as db:
        await _rebuild_acme(store, db, ledger_catalog, clock, force=True)
    with pytest.raises(Unauthenticated, match="revoked"):
        await Service(store, service.catalog, clock=clock).keyring.check(
            f"Bearer {app.secret}", clock.now_ms
        )


async def test_a_threshold_fired_before_a_rebuild_does_not_fire_again_in_its_period(
    store: RedisStore, pool: Pool, service: Service, clock: Clock, call: Call,
    ledger_catalog: Catalog,
) -> None:  # fmt: skip
    """A daily budget's 50% fires; Redis is flushed and rebuilt; a refund takes the day's use
    back under 50% and the next call crosses it again: the marker came back, so it does not
    fire a second time that day (as it would not have without the rebuild)."""
    await service.upsert_customer("acme", UpsertCustomerRequest(plan="test"))
    await service.grant("acme", GrantRequest(credit_type="paid", amount="10", idempotency_key="g"))
    await service.set_budget("acme", SetBudgetRequest(limit="1", period="day"))
    await service.set_alerts("acme", SetAlertsRequest(thresholds=["50%"], period="day"))
    await call("acme", units={"input_tokens": 600_000})  # 0.6 of the day's 1: fires 50%
    await drain(worker(store, pool))

    async def fired() -> list[tuple[str, str, str]]:
        async with pool.acquire() as db:
            rows = await db.fetch("SELECT scope, period, rule FROM alerts WHERE customer = 'acme'")
        return sorted((r["scope"], r["period"], r["rule"]) for r in rows)

    assert await fired() == [("customer", "day", "p50")]
    await store.client.flushall()
    async with pool.acquire() as db:
        await _rebuild_acme(store, db, ledger_catalog, clock)
        await resume_serving(store.client, store.layout, db)
        event = await db.fetchval("SELECT event_id FROM usage_events WHERE customer = 'acme'")
        back = RefundRequest(idempotency_key="r", event_id=event, reason="x", amount="0.2")
        assert (await refund(db, store, "acme", back, OPERATOR, clock.now_ms))["result"] == (
            "refunded"
        )
    service.customers.invalidate("acme")
    [day] = [b for b in (await service.budgets("acme")).budgets if b.period == "day"]
    assert day.used == "0.400000000"  # under 50% again
    await call("acme", units={"input_tokens": 200_000})  # 0.6: crosses 50% once more
    await drain(worker(store, pool, "w2"))
    assert await fired() == [("customer", "day", "p50")]  # once in the day, all the same


async def test_keys_issued_before_the_ledger_kept_them_are_backfilled_then_rebuilt(
    store: RedisStore, pool: Pool, service: Service, clock: Clock, ledger_catalog: Catalog
) -> None:
    """A proxy key an older sidecar issued never reached the ledger (no credential event):
    ``backfill_credentials`` stores it once, and a rebuild after a flush gives it back."""
    await service.upsert_customer("acme", UpsertCustomerRequest(plan="test"))
    await drain(worker(store, pool))
    old = await service.issue_proxy_key("acme", IssueProxyKeyRequest(idempotency_key="old"))
    stream = store.layout.stream_of("acme")
    shipped = [i for i, f in await store.client.xrange(stream) if f[b"kind"] == b"credential"]
    await store.client.xdel(stream, *shipped)  # as an older sidecar: only in Redis
    await drain(worker(store, pool, "w2"))
    async with pool.acquire() as db:
        assert await db.fetchval("SELECT count(*) FROM credentials") == 0
        assert await backfill_credentials(store.client, store.layout, db, "acme") == 1
        assert await backfill_credentials(store.client, store.layout, db, "acme") == 0  # once
        await store.client.flushall()
        await _rebuild_acme(store, db, ledger_catalog, clock)
    fresh = Service(store, service.catalog, clock=clock)
    key = await fresh.keyring.check(f"Bearer {old.secret}", clock.now_ms)
    assert key.id == old.key.id
