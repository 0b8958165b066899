"""``creditgate ledger rebuild``: restore customers' Redis money state from the ledger.

For a flushed or replaced Redis. The state written is ``state.expected_state`` — plan,
unspent buckets in burn order, budgets, period counters, the carried remainder, and grant
idempotency keys (so that a retried grant still grants nothing twice) — in one MULTI per
customer, by one script (store/lua/restore_state.lua: one slot, all or nothing, on one node or a
cluster). Holds in flight are not money and are not rebuilt. A customer that still has state
in Redis is refused unless ``force``; then all of its keys are replaced (holds in flight are
dropped: their commit answers not_found and charges nothing). Its shard's event stream is
not the customer's and is kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from sidecar.catalog.model import Catalog
from sidecar.errors import InvalidInput, NotFound
from sidecar.ledger.db import Connection
from sidecar.ledger.facts import load_facts
from sidecar.ledger.state import RedisState, expected_state
from sidecar.store.layout import GRANTED, Layout
from sidecar.store.scripts import load_scripts
from sidecar.store.topology import Client

__all__ = ["rebuild_customer", "write_state"]


async def _customer_keys(client: Client, keys: Layout, customer: str) -> list[str]:
    """Names (relative to the customer's prefix) of every key the customer has."""
    # Customer ids hold no glob characters (sidecar/ids.py), so the pattern is literal.
    head = keys.key(customer, "")
    return [
        key.decode().removeprefix(head)
        async for key in client.scan_iter(match=head + "*", count=1000)
    ]


async def write_state(client: Client, keys: Layout, state: RedisState, *, replace: bool) -> None:
    """Write ``state`` in one script; with ``replace``, delete the customer's keys first."""
    customer = state.customer
    payload: dict[str, Any] = {
        "customer": customer,
        "drop": await _customer_keys(client, keys, customer) if replace else [],
        "hashes": state.hashes,
        "buckets": state.buckets,
        "ttl": state.ttl_ms,
        "grants": [keys.idem_key(customer, "g", key) for key in state.idempotency_keys],
        "granted": GRANTED,
    }
    script = _RESTORE.source
    await client.eval(script, 1, keys.customer_key(customer), msgspec.json.encode(payload))


_RESTORE = load_scripts()["restore_state"]


async def rebuild_customer(
    client: Client,
    keys: Layout,
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
    if not force and await client.exists(keys.customer_key(customer)):
        raise InvalidInput(
            "customer",
            f"{customer!r} still has state in Redis; reconcile it, or rebuild with --force "
            "to replace it (holds in flight are dropped)",
        )
    state = expected_state(facts, catalogs, catalog, now_ms)
    await write_state(client, keys, state, replace=force)
    return state
