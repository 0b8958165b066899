"""``creditgate ledger rebuild``: restore customers' Redis money state from the ledger.

For a flushed or replaced Redis. The state written is ``state.expected_state`` — plan,
unspent buckets in burn order, budgets, period counters, the carried remainder, and grant
idempotency keys (so that a retried grant still grants nothing twice) — in one MULTI per
customer, by one script (store/lua/restore_state.lua: one slot, all or nothing, on one node or a
cluster). Holds in flight are not money and are not rebuilt. A customer that still has state
in Redis is refused unless ``force``; then all of its keys are replaced (holds in flight are
dropped: their commit answers not_found and charges nothing). Its shard's event stream is
not the customer's and is kept.

The idempotency records of the commits the ledger knows of, within the idempotency window,
are written back too (``commit_records``): a retried commit answers ``already_committed`` with
its first figures, and a retried reserve the reservation it placed, as before the loss.
Releases and holds never committed are not in the ledger: their retries are decided afresh.
So are the markers of the alerts already fired (ledger/markers.py), in the same script, so that
a threshold crossed does not fire twice in its period; and then the customer's proxy keys and
admin tokens (``restore_credentials``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from sidecar.catalog.model import Catalog
from sidecar.errors import InvalidInput, NotFound
from sidecar.ledger import generation
from sidecar.ledger.db import Connection
from sidecar.ledger.facts import load_facts
from sidecar.ledger.markers import FiredAlert, expected_markers
from sidecar.ledger.state import RedisState, expected_state
from sidecar.store import layout as names
from sidecar.store.layout import GRANTED, Layout
from sidecar.store.scripts import load_scripts
from sidecar.store.topology import Client, mark_generation
from sidecar.times import ms_of

__all__ = ["CommitRow", "commit_records", "rebuild_customer", "resume_serving", "write_state"]


class CommitRow(msgspec.Struct, frozen=True, kw_only=True):
    """A committed call as the ledger stored it, with what its idempotency records need."""

    reservation_id: str
    idempotency_key: str
    reserved_ms: int
    committed_ms: int
    cost_nanos: int
    overrun_nanos: int
    released_nanos: int
    uncovered_nanos: int
    burned: list[tuple[str, str, str]]
    """(grant id, credit type, nano-credits) per bucket burned."""


def commit_records(
    rows: list[CommitRow], now_ms: int, window_ms: int
) -> tuple[dict[str, dict[str, str]], dict[str, int]]:
    """The reserve and resolution record hashes (store/layout.py) of ``rows``, and their
    lifetimes left, as reserve.lua and commit.lua write them; pure. Rows whose records would
    have expired by now are left out."""
    hashes: dict[str, dict[str, str]] = {}
    ttl: dict[str, int] = {}

    def put(name: str, field: str, value: str, until_ms: int) -> None:
        if until_ms > now_ms:
            hashes.setdefault(name, {})[field] = value
            ttl[name] = max(ttl.get(name, 0), until_ms - now_ms)

    for row in rows:
        window = names.record_window(row.reserved_ms)
        held = row.cost_nanos - row.overrun_nanos + row.released_nanos
        put(
            names.reserves_key(window), row.idempotency_key, f"{row.reservation_id}|{held}",
            row.reserved_ms + window_ms,
        )  # fmt: skip
        burned = msgspec.json.encode(row.burned).decode() if row.burned else ""
        figures = (row.cost_nanos, row.overrun_nanos, row.released_nanos, row.uncovered_nanos)
        put(
            names.resolved_key(window), row.reservation_id,
            "|".join(["c", *map(str, figures), burned]), row.committed_ms + window_ms,
        )  # fmt: skip
    return hashes, ttl


async def _commits(
    connection: Connection, customer: str, now_ms: int, window_ms: int
) -> list[CommitRow]:
    """The customer's commits of the last ``window_ms`` (of commit time) the ledger stored
    with what their hold released (events of 0.3 and later)."""
    rows = await connection.fetch(
        """
        SELECT event_id, request_id, cost_nanos, overrun_nanos, released_nanos, uncovered_nanos,
               burned::text AS burned,
               (extract(epoch FROM reserved_at) * 1000)::bigint AS reserved_ms,
               (extract(epoch FROM ts) * 1000)::bigint AS committed_ms
        FROM usage_events
        WHERE customer = $1 AND released_nanos IS NOT NULL
          AND ts >= 'epoch'::timestamptz + $2 * interval '1 millisecond'
        """,
        customer, now_ms - window_ms,
    )  # fmt: skip
    return [
        CommitRow(
            reservation_id=row["event_id"],
            idempotency_key=row["request_id"],
            reserved_ms=row["reserved_ms"],
            committed_ms=row["committed_ms"],
            cost_nanos=row["cost_nanos"],
            overrun_nanos=row["overrun_nanos"],
            released_nanos=row["released_nanos"],
            uncovered_nanos=row["uncovered_nanos"],
            burned=[
                (b["grant_id"], b["credit_type"], b["amount"])
                for b in msgspec.json.decode(row["burned"])
            ],
        )
        for row in rows
    ]


async def _customer_keys(client: Client, keys: Layout, customer: str) -> list[str]:
    """Names (relative to the customer's prefix) of every key the customer has."""
    # Customer ids hold no glob characters (sidecar/ids.py), so the pattern is literal.
    head = keys.key(customer, "")
    return [
        key.decode().removeprefix(head)
        async for key in client.scan_iter(match=head + "*", count=1000)
    ]


async def write_state(
    client: Client,
    keys: Layout,
    state: RedisState,
    *,
    replace: bool,
    records: tuple[dict[str, dict[str, str]], dict[str, int]] = ({}, {}),
) -> None:
    """Write ``state`` and the idempotency ``records`` (``commit_records``) in one script;
    with ``replace``, delete the customer's keys first."""
    customer = state.customer
    payload: dict[str, Any] = {
        "customer": customer,
        "drop": await _customer_keys(client, keys, customer) if replace else [],
        "hashes": state.hashes | records[0],
        "buckets": state.buckets,
        "ttl": state.ttl_ms | records[1],
        "grants": [keys.idem_key(customer, "g", key) for key in state.idempotency_keys],
        "granted": GRANTED,
    }
    script = _RESTORE.source
    await client.eval(script, 1, keys.customer_key(customer), msgspec.json.encode(payload))


_RESTORE = load_scripts()["restore_state"]


_FIRED = """
SELECT a.scope, a.period, a.rule, a.threshold_nanos, e.reserved_at
FROM alerts a JOIN usage_events e ON e.event_id = a.reservation_id AND e.customer = a.customer
WHERE a.customer = $1
"""


async def _fired(connection: Connection, customer: str) -> list[FiredAlert]:
    return [
        FiredAlert(
            scope=r["scope"], period=r["period"], rule=r["rule"],
            threshold_nanos=r["threshold_nanos"], reserved_ms=ms_of(r["reserved_at"]),
        )
        for r in await connection.fetch(_FIRED, customer)
    ]  # fmt: skip


_CREDENTIALS = """
SELECT DISTINCT ON (namespace, credential_id) namespace, credential_id, record::text AS record,
       revoked
FROM credentials WHERE customer = $1
ORDER BY namespace, credential_id, revoked DESC, stream_ms DESC, stream_seq DESC
"""
"""Each credential's last state: revoked once revoked."""


async def restore_credentials(
    client: Client, keys: Layout, connection: Connection, customer: str
) -> None:
    """Write back the customer's proxy keys and admin tokens as the ledger has them. A revoked
    one is written over whatever Redis holds; one the ledger has unrevoked only where Redis has
    none (SET NX), so that a revocation Redis holds, or makes meanwhile, is never undone."""
    for row in await connection.fetch(_CREDENTIALS, customer):
        key = keys.credential_key(row["namespace"], row["credential_id"])
        await client.set(key, row["record"], nx=not row["revoked"])
        await client.sadd(keys.credentials_key(row["namespace"], customer), row["credential_id"])


_BACKFILL = """
INSERT INTO credentials (event_id, customer, namespace, credential_id, record, revoked, ts,
                         stream_ms, stream_seq)
VALUES ($1, $2, $3, $4, $5::jsonb, $6, 'epoch'::timestamptz + $7 * interval '1 millisecond', 0, 0)
ON CONFLICT (event_id) DO NOTHING
"""


async def backfill_credentials(
    client: Client, keys: Layout, connection: Connection, customer: str
) -> int:
    """Store the customer's proxy keys and admin tokens that Redis has and the ledger has not
    (issued before credentials were shipped to it), so that a rebuild can write them back;
    the number stored. Idempotent: a record already stored is left as it is."""
    stored = 0
    for namespace in (names.PROXY_KEYS, names.ADMIN_TOKENS):
        for member in await client.smembers(keys.credentials_key(namespace, customer)):
            credential_id = member.decode() if isinstance(member, bytes) else member
            raw = await client.get(keys.credential_key(namespace, credential_id))
            if raw is None:
                continue
            record = msgspec.json.decode(raw, type=dict[str, Any])
            revoked = record.get("revoked_ms") is not None
            state = "revoked" if revoked else "issued"
            at = record["revoked_ms"] if revoked else record["created_ms"]
            status = await connection.execute(
                _BACKFILL, f"cr_{credential_id}_{state}", customer, namespace, credential_id,
                raw.decode() if isinstance(raw, bytes) else raw, revoked, at,
            )  # fmt: skip
            stored += status.endswith(" 1")
    return stored


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
    window_ms: int = names.IDEMPOTENCY_WINDOW_MS,
) -> RedisState:
    """Restore one customer, and its commits' idempotency records of the last ``window_ms``
    (the sidecars' ``idempotency_window_ms``); returns the money state written."""
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
    records, ttl = commit_records(
        await _commits(connection, customer, now_ms, window_ms), now_ms, window_ms
    )
    marks, marks_ttl = expected_markers(await _fired(connection, customer), state, now_ms)
    await write_state(
        client, keys, state, replace=force, records=(records | marks, ttl | marks_ttl)
    )
    await restore_credentials(client, keys, connection, customer)
    return state


async def resume_serving(client: Client, keys: Layout, connection: Connection) -> str | None:
    """After every customer is rebuilt: a Redis that lost state (ledger/generation.py) starts
    a new generation and serves again; one the ledger never recorded gets markers, as a
    sidecar starting on it would. Returns what happened to a lost one, None otherwise."""
    lost = await generation.status(client, keys, connection)
    if lost is None:
        await mark_generation(client, keys)
        return None
    renewed = await generation.renew(client, keys, connection, f"rebuilt: {lost}")
    return f"{lost}; rebuilt as generation {renewed}"
