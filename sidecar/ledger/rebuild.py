"""``creditgate ledger rebuild``: restore customers' Redis money state from the ledger.

For a flushed or replaced Redis. The state written is ``state.expected_state`` — plan,
unspent buckets in burn order, budgets, period counters, the carried remainder, and grant
idempotency keys (so that a retried grant still grants nothing twice) — in one MULTI per
customer. Holds in flight are not money and are not rebuilt. A customer that still has state
in Redis is refused unless ``force``; then all of its keys but its event stream are replaced
(holds in flight are dropped: their commit answers not_found and charges nothing).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import redis.asyncio as aioredis

from sidecar.catalog.model import Catalog
from sidecar.errors import InvalidInput, NotFound
from sidecar.ledger.db import Connection
from sidecar.ledger.facts import load_facts
from sidecar.ledger.state import RedisState, expected_state
from sidecar.store import layout

__all__ = ["rebuild_customer", "write_state"]


async def _customer_keys(client: aioredis.Redis, customer: str) -> list[bytes]:
    # Customer ids hold no glob characters (sidecar/ids.py), so the pattern is literal.
    events = layout.key(customer, layout.EVENTS).encode()
    return [
        key
        async for key in client.scan_iter(match=layout.key(customer, "*"), count=1000)
        if key != events
    ]


async def write_state(client: aioredis.Redis, state: RedisState, *, replace: bool) -> None:
    """Write ``state`` in one MULTI (one hash slot); with ``replace``, delete the customer's
    other keys first (its event stream is kept)."""
    customer = state.customer
    stale = await _customer_keys(client, state.customer) if replace else []
    async with client.pipeline(transaction=True) as pipe:
        if stale:
            pipe.delete(*stale)
        for name, fields in state.hashes.items():
            pipe.hset(layout.key(customer, name), mapping=cast("dict[Any, Any]", fields))
        if state.buckets:
            pipe.zadd(layout.key(customer, layout.BUCKETS), dict.fromkeys(state.buckets, 0))
        for name, ttl_ms in state.ttl_ms.items():
            pipe.pexpire(layout.key(customer, name), ttl_ms)
        for key in state.idempotency_keys:
            pipe.set(layout.idem_key(customer, "g", key), layout.GRANTED)
        await pipe.execute()
    await client.sadd(layout.REGISTRY_KEY, customer)


async def rebuild_customer(
    client: aioredis.Redis,
    connection: Connection,
    customer: str,
    *,
    catalogs: Mapping[str, Catalog],
    catalog: Catalog,
    now_ms: int,
    force: bool = False,
) -> RedisState:
    """Restore one customer; returns what was written."""
    facts = await load_facts(connection, customer, now_ms)
    if not facts.changes:
        raise NotFound("customer", f"the ledger has no customer {customer!r}")
    if not force and await client.exists(layout.customer_key(customer)):
        raise InvalidInput(
            "customer",
            f"{customer!r} still has state in Redis; reconcile it, or rebuild with --force "
            "to replace it (holds in flight are dropped)",
        )
    state = expected_state(facts, catalogs, catalog, now_ms)
    await write_state(client, state, replace=force)
    return state
