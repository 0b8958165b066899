"""The Redis layout has one owner: what the scripts write is named and timed by store/layout.py.

Each key's PTTL is read from Redis itself right after a reserve, so a script that spelt a key
or a lifetime its own way would fail here.
"""

from __future__ import annotations

import pytest
from redis.crc import key_slot

from sidecar.engine.periods import minute_id, period_ids
from sidecar.errors import SettingsError
from sidecar.service import Service
from sidecar.store import layout
from sidecar.store.layout import Layout
from sidecar.store.redis_store import RedisStore
from sidecar.store.topology import agree_layout
from sidecar.wire import CommitRequest, ReserveRequest
from tests.conftest import NOON_MS, Clock, Setup

pytestmark = pytest.mark.redis

SLACK_MS = 5_000  # between the reserve and the PTTL read; a real bug is off by days


async def _pttl(store: RedisStore, name: str) -> int:
    return int(await store.client.pttl(store.layout.key("acme", name)))


async def test_every_key_a_reserve_writes_lives_as_the_layout_says(
    service: Service, setup_customer: Setup, store: RedisStore, clock: Clock
) -> None:
    budgets = [({}, period, "1") for period in ("day", "month", "lifetime")]
    budgets.append(({"session": "run-1"}, "lifetime", "1"))  # holds count where budgets are
    await setup_customer(plan="limited", grants={"paid": "1"}, budgets=budgets)
    request = ReserveRequest(
        customer="acme", feature="chat", model="small", units={"input_tokens": 10},
        idempotency_key="r-1", user="u-1", session="run-1",
    )  # fmt: skip
    answer = await service.reserve(request)
    assert answer.allowed, answer

    periods = period_ids(clock())
    expected = {
        layout.usage_key(periods.day): layout.DAY_COUNTER_TTL_MS,
        layout.usage_key(periods.month): layout.MONTH_COUNTER_TTL_MS,
        layout.session_key("run-1"): layout.SESSION_TTL_MS,
        layout.rate_key(minute_id(NOON_MS)): layout.RATE_WINDOW_TTL_MS,
        layout.reserves_key(layout.record_window(clock())): layout.IDEMPOTENCY_WINDOW_MS,
    }
    for name, lifetime in expected.items():
        left = await _pttl(store, name)
        assert lifetime - SLACK_MS < left <= lifetime, (name, left, lifetime)
    # The lifetime key never expires; neither do the money keys.
    for name in (layout.usage_key(periods.lifetime), layout.BUCKET, layout.BALANCE):
        assert await _pttl(store, name) == -1, name


async def test_the_layout_names_every_key_and_field_a_call_leaves(
    service: Service, setup_customer: Setup, store: RedisStore, clock: Clock
) -> None:
    await setup_customer(grants={"paid": "1"}, budgets=[({"team": "eng"}, "day", "0.5")])
    request = ReserveRequest(
        customer="acme", feature="steps", model="small", units={"requests": 1},
        idempotency_key="r-1", team="eng", session="run-1",
    )  # fmt: skip
    held = await service.reserve(request)
    assert held.allowed, held
    rid = held.reservation_id or ""
    done = await service.commit(CommitRequest(reservation_id=rid, units={"requests": 1}))
    assert done.result == "committed", done

    periods, window = period_ids(clock()), layout.record_window(clock())
    usage = [layout.usage_key(p) for p in (periods.day, periods.month, periods.lifetime)]
    names = {
        layout.CUSTOMER, layout.BUCKET, layout.BUCKETS, layout.BUDGETS, layout.BALANCE,
        layout.reserves_key(window), layout.resolved_key(window),
        layout.session_key("run-1"), *usage,
    }  # fmt: skip
    shard = store.layout.shard("acme")
    named = {store.layout.key("acme", name) for name in names} | {
        store.layout.stream(shard), store.layout.shard_key(shard, layout.CUSTOMERS),
        layout.Layout().layout_key,
    }  # fmt: skip
    markers = {store.layout.shard_key(s, layout.GENERATION) for s in range(store.layout.shards)}
    found = {key.decode() async for key in store.client.scan_iter()} - markers
    assert markers <= {key.decode() async for key in store.client.scan_iter()}
    granted = {
        k for k in found if k.startswith(store.layout.key("acme", layout.idem_name("g", "")))
    }
    assert found - granted == named
    nodes = ("customer", "team:eng", layout.quota_field("steps"))
    fields = {field for node in nodes for field in layout.counter_fields(node)}
    for name in usage:
        counters = await store.client.hgetall(store.layout.key("acme", name))
        assert {field.decode() for field in counters} <= fields, name
    balance = await store.client.hgetall(store.layout.key("acme", layout.BALANCE))
    assert {field.decode() for field in balance} == {layout.HELD, layout.CARRY}


def _round_trips(store: RedisStore) -> dict[str, float]:
    """Redis round trips so far, by command or script name."""
    return {
        sample.labels["command"]: sample.value
        for family in store.metrics.registry.collect()
        if family.name == "creditgate_redis_seconds"
        for sample in family.samples
        if sample.name.endswith("_count")
    }


async def test_balance_and_budgets_read_in_one_round_trip_each(
    service: Service, setup_customer: Setup, store: RedisStore
) -> None:
    budgets = [
        ({"team": "eng"}, "day", "1"),
        ({}, "month", "2"),
        ({"session": "s"}, "lifetime", "1"),
    ]
    await setup_customer(grants={"paid": "1", "promo": "1"}, budgets=budgets)
    await service.balance("acme")  # the customer is cached from here on
    before = _round_trips(store)
    state = await service.balance("acme")
    path = await service.budgets("acme", team="eng")
    after = _round_trips(store)
    spent = {name: after[name] - before.get(name, 0) for name in after}
    assert {name: count for name, count in spent.items() if count} == {"read_state": 2}
    assert (len(state.buckets), len(state.budgets)) == (2, 3)
    assert [b.scope for b in path.budgets] == ["customer", "team:eng"]


def test_a_customer_maps_to_one_shard_whose_keys_share_one_slot() -> None:
    ids = [f"cust-{i}" for i in range(2000)]
    shards = Layout(256)
    # Stable across processes and releases: CRC-32 of the id, the deployment's fact.
    assert [shards.shard(c) for c in ("acme", "globex")] == [62, 250]
    assert len({shards.shard(c) for c in ids}) == 256  # every shard is used
    for customer in ids[:50]:
        slot = key_slot(shards.customer_key(customer).encode())
        names = (layout.BUCKET, layout.usage_key("m202611"), layout.idem_name("r", "k"))
        keys = [shards.key(customer, name) for name in names]
        keys.append(shards.stream_of(customer))
        assert {key_slot(key.encode()) for key in keys} == {slot}, customer


async def test_the_shard_count_is_recorded_once_and_a_process_that_disagrees_is_refused(
    store: RedisStore,
) -> None:
    client = store.client
    await client.flushall()
    assert (await agree_layout(client, 64)).shards == 64
    assert (await agree_layout(client, None)).shards == 64  # unset: as recorded
    with pytest.raises(SettingsError, match=r"--shards .* is 256, .* laid out in 64 shards"):
        await agree_layout(client, 256)
    assert await client.hget(layout.Layout().layout_key, "shards") == b"64"


async def test_a_redis_in_the_layout_before_shards_is_refused_until_moved(
    store: RedisStore,
) -> None:
    client = store.client
    await client.flushall()
    await client.sadd(layout.Layout().legacy_registry_key, "acme")
    with pytest.raises(SettingsError, match="creditgate store migrate"):
        await agree_layout(client, None)
    assert not await client.exists(layout.Layout().layout_key)  # nothing recorded
