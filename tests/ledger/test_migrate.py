"""``creditgate store migrate``: a deployment in the layout before shards moves into shards
with its money, its holds in flight, its idempotency records and its events not yet in the
ledger, none lost and none doubled."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from sidecar.embedded import EmbeddedRedis
from sidecar.ledger.db import Pool
from sidecar.service import Service
from sidecar.store import layout
from sidecar.store.migrate import legacy_key, migrate
from sidecar.store.redis_store import RedisStore
from sidecar.store.topology import agree_layout
from sidecar.wire import CommitRequest, ReserveRequest
from tests.conftest import Setup
from tests.ledger.conftest import Call, drain, worker
from tests.ledger.scenario import money_state
from tests.ledger.test_cli import creditgate
from tests.ledger.test_exactly_once import ledger_counts

pytestmark = [pytest.mark.redis, pytest.mark.postgres]


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis) -> str:
    """The layout before shards never ran on a cluster: it moves from a single node only."""
    return redis_server.url


async def _back_to_the_layout_before_shards(store: RedisStore, customer: str) -> None:
    """Lay ``customer`` out as the releases before shards did: its keys under
    ``cg:{c:<id>}:``, hold records naming those keys (resolved ones too, with the sorted set
    ``resolved``), a string key per reserve idempotency record holding its first answer, its own
    stream with the ledger's group where it stood, and the registry ``cg:customers``."""
    client, keys = store.client, store.layout
    new, old = keys.key(customer, ""), legacy_key(customer, "")
    held: Any = await client.hgetall(new + layout.HOLDS)
    records = {
        rid: msgspec.json.decode(record.decode().replace(new, old)) for rid, record in held.items()
    }
    async for key in client.scan_iter(match=new + layout.RESERVES_PREFIX + "*"):
        ttl = await client.pttl(key)
        for field, value in (await client.hgetall(key)).items():
            rid, held_nanos = value.decode().split("|")
            answer = {"allowed": True, "reason": "ok", "reservation_id": rid, "held": held_nanos}
            answer["remaining"] = records.get(rid.encode(), {}).get("rem", {})
            await client.set(old + "idem:r:" + field.decode(), msgspec.json.encode(answer), px=ttl)
        await client.delete(key)
    async for key in client.scan_iter(match=new + layout.RESOLVED_PREFIX + "*"):
        for rid, compact in (await client.hgetall(key)).items():
            records[rid] = {"s": "committed", "r": {"result": "committed"}, "raw": compact.decode()}
            await client.zadd(old + "resolved", {rid: 1})
        await client.delete(key)
    async for key in client.scan_iter(match=new + "*"):
        await client.rename(key, old + key.decode().removeprefix(new))
    for rid, record in records.items():
        for added in ("b", "rem", "soft"):  # fields of the shard layout's records
            record.pop(added, None)
        await client.hset(old + layout.HOLDS, rid, msgspec.json.encode(record))
    stream = keys.stream_of(customer)
    entries: Any = await client.xrange(stream)
    for entry_id, fields in entries:
        await client.xadd(old + layout.EVENTS, fields, id=entry_id)
    (group,) = await client.xinfo_groups(stream)
    await client.xgroup_create(old + layout.EVENTS, "ledger", id=group["last-delivered-id"])
    await client.delete(stream, keys.shard_key(keys.shard(customer), layout.CUSTOMERS))
    await client.delete(layout.Layout().layout_key)
    await client.sadd(layout.Layout().legacy_registry_key, customer)


async def test_money_holds_idempotency_and_unstored_events_survive_the_move(
    store: RedisStore, pool: Pool, service: Service, setup_customer: Setup, call: Call
) -> None:
    await setup_customer(grants={"paid": "10"}, budgets=[({"team": "eng"}, "day", "5")])
    first = await call(units={"input_tokens": 1000}, team="eng")
    await drain(worker(store, pool))  # stored and acknowledged: stays in the ledger only
    second = await call(units={"input_tokens": 2000}, team="eng")  # not yet in the ledger
    request = ReserveRequest(
        customer="acme", feature="chat", model="small", team="eng",
        units={"input_tokens": 4000}, idempotency_key="in-flight",
    )  # fmt: skip
    hold = await service.reserve(request)
    assert hold.allowed
    before = await money_state(store, "acme")
    balance = await service.balance("acme")

    await _back_to_the_layout_before_shards(store, "acme")
    with pytest.raises(Exception, match="creditgate store migrate"):
        await agree_layout(store.client, None)  # a new sidecar refuses to start on it
    moved = await migrate(store.client, store.layout)
    assert (moved.customers, moved.entries) == (1, 1)  # the second debit
    assert (await agree_layout(store.client, None)).shards == store.layout.shards
    assert not [k async for k in store.client.scan_iter(match="cg:{c:*")]
    assert not await store.client.exists(layout.Layout().legacy_registry_key)

    assert await money_state(store, "acme") == before
    holds = await store.client.hkeys(store.layout.key("acme", layout.HOLDS))
    assert holds == [(hold.reservation_id or "").encode()]  # settled holds' records: not moved
    assert await service.balance("acme") == balance  # the hold still counts
    again = await service.reserve(request)
    assert again == hold  # its idempotency record moved, with what its first answer said
    done = await service.commit(
        CommitRequest(reservation_id=hold.reservation_id or "", units={"input_tokens": 3000})
    )
    assert done.result == "committed"  # the hold record names the moved counters
    assert await service.balance("acme") != balance

    assert await drain(worker(store, pool, "w2")) == 2  # the moved debit and the new one
    usage, _, cost = await ledger_counts(pool)
    paid = [first, second, done]
    assert usage == 3
    assert cost == sum(int(c.cost.replace(".", "")) for c in paid if c.cost)


async def test_the_command_moves_a_deployment_and_names_bad_settings(
    store: RedisStore, pool: Pool, service: Service, setup_customer: Setup
) -> None:
    await setup_customer(grants={"paid": "1"})
    await drain(worker(store, pool))
    balance = await service.balance("acme")
    await _back_to_the_layout_before_shards(store, "acme")
    code, _, err = await creditgate("store", "migrate", "--redis", store.url, "--shards", "0")
    assert (code, "--shards" in err) == (2, True), err
    assert await store.client.exists(layout.Layout().legacy_registry_key)  # nothing moved

    code, out, err = await creditgate("store", "migrate", "--redis", store.url)
    assert code == 0, err
    assert out.startswith("moved 1 customers"), out
    assert await service.balance("acme") == balance
    code, out, _ = await creditgate("store", "migrate", "--redis", store.url)
    assert (code, out.startswith("moved 0 customers")) == (0, True), out  # run again: a no-op
