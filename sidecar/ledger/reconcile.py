"""``creditgate ledger reconcile``: compare Redis with the ledger and name every difference.

What is compared is money and what decides about money (``state.expected_state``): the plan
and overrides, every bucket and the burn order, budgets, every period counter of use, the
carried remainder, and the grants' idempotency keys. Holds in flight (``held`` fields) and
rate-limit windows are not money and are not compared; a counter at 0 equals no counter.

Events still in the stream (not yet stored by the ledger) make honest differences: the report
counts them per customer as ``unsettled``; compare again once they are stored. A Redis that
lost state (ledger/generation.py) is reported as ``lost``, whether or not it agrees with the
ledger by now: what it lost never reached the ledger.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
from redis.exceptions import ResponseError

from sidecar.catalog.model import Catalog
from sidecar.engine.periods import period_ids
from sidecar.ledger.db import Connection
from sidecar.ledger.events import next_stream_id, parse_stream_id
from sidecar.ledger.facts import load_facts
from sidecar.ledger.generation import status as generation_status
from sidecar.ledger.state import RedisState, expected_state
from sidecar.store import layout
from sidecar.store.layout import Layout
from sidecar.store.topology import Client, is_cluster

__all__ = ["Difference", "Report", "differences", "read_state", "reconcile"]

_COUNTERS = (layout.usage_key(""), layout.session_key(""))
"""Name stems of the counter keys: usage by period, and sessions."""


class Difference(msgspec.Struct, frozen=True, kw_only=True):
    customer: str
    key: str
    """Relative to the customer's prefix (store/layout.py)."""
    field: str
    redis: str | None
    ledger: str | None


class Report(msgspec.Struct, kw_only=True):
    customers: int = 0
    differences: list[Difference] = msgspec.field(default_factory=list)
    unsettled: dict[str, int] = msgspec.field(default_factory=dict)
    """Customers with stream entries the ledger has not stored yet, and how many."""
    lost: str | None = None
    """Redis does not hold the state the ledger knows of (ledger/generation.py): after which
    event, and how it shows; events committed after it and never stored are lost."""


def _compared(name: str, fields: Mapping[str, str]) -> dict[str, str]:
    """The fields of one hash that are money, with zero counters dropped."""
    if name == layout.CUSTOMER:
        return {f: v for f, v in fields.items() if f in (layout.PLAN, layout.OVERRIDES)}
    if name == layout.BALANCE:
        return {f: v for f, v in fields.items() if f == layout.CARRY and v != "0"}
    if name.startswith(_COUNTERS):
        return {f: v for f, v in fields.items() if f.endswith(layout.USED) and v != "0"}
    return dict(fields)


def differences(expected: RedisState, actual: RedisState) -> list[Difference]:
    """Every way ``actual`` (read from Redis) differs from ``expected`` (the ledger). Pure."""
    out: list[Difference] = []

    def differ(key: str, field: str, redis: str | None, ledger: str | None) -> None:
        if redis != ledger:
            out.append(
                Difference(
                    customer=expected.customer, key=key, field=field, redis=redis, ledger=ledger
                )
            )

    for name in sorted(set(expected.hashes) | set(actual.hashes)):
        want = _compared(name, expected.hashes.get(name, {}))
        have = _compared(name, actual.hashes.get(name, {}))
        for field in sorted(set(want) | set(have)):
            differ(name, field, have.get(field), want.get(field))
    if expected.buckets != actual.buckets:
        differ(layout.BUCKETS, "members", " ".join(actual.buckets), " ".join(expected.buckets))
    for key in sorted(set(expected.idempotency_keys) - set(actual.idempotency_keys)):
        differ(layout.idem_name("g", key), "", None, "present")
    return out


async def read_state(
    client: Client,
    keys: Layout,
    customer: str,
    counter_keys: Sequence[str],
    idempotency_keys: Sequence[str],
) -> RedisState:
    """The customer's money state in Redis: its fixed hashes, ``counter_keys`` (``u:...``,
    ``s:...``) and which of ``idempotency_keys`` exist; read in one MULTI on one node (one
    pipeline on a cluster, which has no MULTI in redis-py's asyncio client: a commit between
    two reads may show as a difference that the next run does not find)."""
    names = [
        layout.CUSTOMER, layout.BUCKET, layout.BUDGETS, layout.BALANCE, layout.ALERTS,
        *counter_keys,
    ]  # fmt: skip
    async with client.pipeline(transaction=not is_cluster(client)) as pipe:
        for name in names:
            pipe.hgetall(keys.key(customer, name))
        pipe.zrange(keys.key(customer, layout.BUCKETS), 0, -1)
        for key in idempotency_keys:
            pipe.exists(keys.idem_key(customer, "g", key))
        answers = await pipe.execute()
    hashes = {
        name: {k.decode(): v.decode() for k, v in answer.items()}
        for name, answer in zip(names, answers, strict=False)
        if answer
    }
    members = answers[len(names)]
    present = answers[len(names) + 1 :]
    return RedisState(
        customer=customer,
        hashes=hashes,
        buckets=sorted(m.decode() for m in members),
        ttl_ms={},
        idempotency_keys=[k for k, found in zip(idempotency_keys, present, strict=True) if found],
    )


async def _unsettled(client: Client, stream: str, group: str) -> dict[str, int]:
    """Entries of one shard's stream that the group may not have stored yet (undelivered, or
    pending), counted by customer."""
    try:
        groups = await client.xinfo_groups(stream)
    except ResponseError:
        return {}  # no stream: nothing waits
    ours = [info for info in groups if info["name"].decode() == group]
    floor = b"-"
    if ours:
        floor = next_stream_id(ours[0]["last-delivered-id"])
        pending = await client.xpending(stream, group)
        if pending["pending"]:
            floor = min(floor, pending["min"], key=parse_stream_id)
    counts: dict[str, int] = {}
    while True:
        page: Any = await client.xrange(stream, min=floor, count=1000)
        if not page:
            return counts
        for _, fields in page:
            customer = fields.get(b"customer", b"").decode()
            counts[customer] = counts.get(customer, 0) + 1
        floor = next_stream_id(page[-1][0])


async def reconcile(
    client: Client,
    keys: Layout,
    connection: Connection,
    customers: Sequence[str],
    *,
    catalogs: Mapping[str, Catalog],
    catalog: Catalog,
    now_ms: int,
    group: str = "ledger",
) -> Report:
    """Compare each customer's Redis state with the ledger's; the report lists differences."""
    report = Report(lost=await generation_status(client, keys, connection))
    waiting: dict[str, int] = {}
    for shard in sorted({keys.shard(customer) for customer in customers}):
        waiting |= await _unsettled(client, keys.stream(shard), group)
    periods = period_ids(now_ms)
    current = [layout.usage_key(p) for p in (periods.day, periods.month, periods.lifetime)]
    for customer in customers:
        report.customers += 1
        facts = await load_facts(connection, customer, now_ms)
        expected = expected_state(facts, catalogs, catalog, now_ms)
        counters = sorted(
            {name for name in expected.hashes if name.startswith(_COUNTERS)} | set(current)
        )
        actual = await read_state(client, keys, customer, counters, expected.idempotency_keys)
        report.differences.extend(differences(expected, actual))
        if waiting.get(customer):
            report.unsettled[customer] = waiting[customer]
    return report
