"""Write one batch of events in one transaction: COPY into staging, then insert idempotently.

Each table's rows are COPYed (binary) into a temporary staging table of the connection and
moved with one ``INSERT ... SELECT ... ON CONFLICT DO NOTHING``: a batch costs a handful of
statements whatever its size, and an event delivered again (a worker died before
acknowledging it) is absorbed by its unique id. The staging tables empty themselves at commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from sidecar.ledger.db import Connection
from sidecar.ledger.entries import entries_of
from sidecar.ledger.events import (
    Alert,
    Audit,
    Budget,
    Correction,
    Credential,
    CustomerChange,
    Debit,
    Event,
    Expiry,
    Grant,
    Unparsed,
)
from sidecar.ledger.webhooks import enqueue_sql

__all__ = ["write_batch"]

_MS = "'epoch'::timestamptz + {} * interval '1 millisecond'"


class _Table:
    """A ledger table fed through a staging table: (column, staging type, expression)."""

    def __init__(self, name: str, columns: list[tuple[str, str, str]], conflict: str) -> None:
        self.name = name
        self.stage = f"stage_{name}"
        self.stage_columns = [column for column, _, _ in columns]
        names = ", ".join(self.stage_columns)
        typed = ", ".join(f"{column} {kind}" for column, kind, _ in columns)
        select = ", ".join(expr.format(column) for column, _, expr in columns)
        self.create = (
            f"CREATE TEMP TABLE IF NOT EXISTS {self.stage} ({typed}) ON COMMIT DELETE ROWS;"
        )
        self.move = (
            f"INSERT INTO {name} ({names}) SELECT {select} FROM {self.stage} "
            f"ON CONFLICT {conflict} DO NOTHING"
        )


_USAGE = _Table(
    "usage_events",
    [
        ("event_id", "text", "{}"), ("customer", "text", "{}"), ("team", "text", "{}"),
        ("user_id", "text", "{}"), ("agent", "text", "{}"), ("session", "text", "{}"),
        ("feature", "text", "{}"), ("model", "text", "{}"), ("units", "text", "{}::jsonb"),
        ("cost_nanos", "int8", "{}"), ("overrun_nanos", "int8", "{}"),
        ("uncovered_nanos", "int8", "{}"), ("burned", "text", "{}::jsonb"),
        ("carry_femtos", "int8", "{}"), ("catalog_version", "text", "{}"),
        ("request_id", "text", "{}"), ("tags", "text", "{}::jsonb"),
        ("reserved_at", "int8", _MS), ("ts", "int8", _MS),
        ("stream_ms", "int8", "{}"), ("stream_seq", "int8", "{}"), ("decided_by", "text", "{}"),
        ("released_nanos", "int8", "{}"), ("estimated", "bool", "{}"),
        ("serve_femtos", "numeric", "{}"),
    ],
    "(event_id)",
)  # fmt: skip
_ENTRIES = _Table(
    "ledger_entries",
    [
        ("event_id", "text", "{}"), ("seq", "int4", "{}"), ("customer", "text", "{}"),
        ("kind", "text", "{}"), ("credit_type", "text", "{}"), ("grant_id", "text", "{}"),
        ("amount_nanos", "int8", "{}"), ("ts", "int8", _MS),
    ],
    "(event_id, seq)",
)  # fmt: skip
_GRANTS = _Table(
    "credit_grants",
    [
        ("grant_id", "text", "{}"), ("event_id", "text", "{}"), ("customer", "text", "{}"),
        ("credit_type", "text", "{}"), ("amount_nanos", "int8", "{}"), ("priority", "int4", "{}"),
        ("expires_at", "int8", _MS), ("reason", "text", "{}"), ("idempotency_key", "text", "{}"),
        ("ts", "int8", _MS),
    ],
    "(grant_id)",
)  # fmt: skip
_BUDGETS = _Table(
    "budget_changes",
    [
        ("event_id", "text", "{}"), ("customer", "text", "{}"), ("scope", "text", "{}"),
        ("period", "text", "{}"), ("limit_nanos", "int8", "{}"), ("mode", "text", "{}"),
        ("ts", "int8", _MS), ("stream_ms", "int8", "{}"), ("stream_seq", "int8", "{}"),
    ],
    "(event_id)",
)  # fmt: skip
_CUSTOMERS = _Table(
    "customer_changes",
    [
        ("event_id", "text", "{}"), ("customer", "text", "{}"), ("plan", "text", "{}"),
        ("overrides", "text", "{}"), ("ts", "int8", _MS), ("stream_ms", "int8", "{}"),
        ("stream_seq", "int8", "{}"),
    ],
    "(event_id)",
)  # fmt: skip
_AUDIT = _Table(
    "audit_log",
    [
        ("event_id", "text", "{}"), ("customer", "text", "{}"), ("actor", "text", "{}"),
        ("action", "text", "{}"), ("team", "text", "{}"), ("detail", "text", "{}::jsonb"),
        ("ts", "int8", _MS), ("stream_ms", "int8", "{}"), ("stream_seq", "int8", "{}"),
    ],
    "(event_id)",
)  # fmt: skip
_ALERTS = _Table(
    "alerts",
    [
        ("event_id", "text", "{}"), ("customer", "text", "{}"), ("team", "text", "{}"),
        ("scope", "text", "{}"), ("period", "text", "{}"), ("rule", "text", "{}"),
        ("threshold_nanos", "int8", "{}"), ("used_nanos", "int8", "{}"),
        ("limit_nanos", "int8", "{}"), ("mode", "text", "{}"), ("reservation_id", "text", "{}"),
        ("ts", "int8", _MS), ("stream_ms", "int8", "{}"), ("stream_seq", "int8", "{}"),
    ],
    "(event_id)",
)  # fmt: skip
_CORRECTIONS = _Table(
    "corrections",
    [
        ("event_id", "text", "{}"), ("customer", "text", "{}"), ("kind", "text", "{}"),
        ("corrects", "text", "{}"), ("reason", "text", "{}"), ("actor", "text", "{}"),
        ("amount_nanos", "int8", "{}"), ("moves", "text", "{}::jsonb"),
        ("uncovered_nanos", "int8", "{}"), ("ts", "int8", _MS), ("stream_ms", "int8", "{}"),
        ("stream_seq", "int8", "{}"),
    ],
    "(event_id)",
)  # fmt: skip
_CREDENTIALS = _Table(
    "credentials",
    [
        ("event_id", "text", "{}"), ("customer", "text", "{}"), ("namespace", "text", "{}"),
        ("credential_id", "text", "{}"), ("record", "text", "{}::jsonb"),
        ("revoked", "bool", "{}"), ("ts", "int8", _MS), ("stream_ms", "int8", "{}"),
        ("stream_seq", "int8", "{}"),
    ],
    "(event_id)",
)  # fmt: skip
_UNPARSED = _Table(
    "unparsed_events",
    [
        ("customer", "text", "{}"), ("stream_ms", "int8", "{}"), ("stream_seq", "int8", "{}"),
        ("fields", "text", "{}::jsonb"), ("problem", "text", "{}"),
    ],
    "(customer, stream_ms, stream_seq)",
)  # fmt: skip
_TABLES = (
    _USAGE,
    _ENTRIES,
    _GRANTS,
    _BUDGETS,
    _CUSTOMERS,
    _AUDIT,
    _ALERTS,
    _CORRECTIONS,
    _CREDENTIALS,
    _UNPARSED,
)
_CREATE_STAGING = "\n".join(table.create for table in _TABLES)


def rows_of(events: Sequence[Event]) -> dict[str, list[tuple[Any, ...]]]:
    """The rows each ledger table gets from ``events``, by table name; pure."""
    out: dict[str, list[tuple[Any, ...]]] = {table.name: [] for table in _TABLES}
    usage, entries = out["usage_events"], out["ledger_entries"]
    for e in events:
        for n in entries_of(e):
            entries.append(
                (n.event_id, n.seq, n.customer, n.kind, n.credit_type, n.grant_id,
                 n.amount_nanos, n.ts_ms)
            )  # fmt: skip
        if isinstance(e, Debit):
            usage.append(
                (e.event_id, e.customer, e.team, e.user, e.agent, e.session, e.feature, e.model,
                 e.units, e.cost_nanos, e.overrun_nanos, e.uncovered_nanos, e.burned_json,
                 e.carry_femtos, e.catalog_version, e.request_id, e.tags, e.reserved_ms,
                 e.ts_ms, e.stream[0], e.stream[1], e.decided_by, e.released_nanos, e.estimated,
                 e.serve_femtos)
            )  # fmt: skip
        elif isinstance(e, Grant):
            out["credit_grants"].append(
                (e.grant_id, e.event_id, e.customer, e.credit_type, e.amount_nanos, e.priority,
                 e.expires_at_ms, e.reason, e.idempotency_key, e.ts_ms)
            )  # fmt: skip
        elif isinstance(e, Budget):
            out["budget_changes"].append(
                (e.event_id, e.customer, e.scope, e.period, e.limit_nanos, e.mode, e.ts_ms,
                 e.stream[0], e.stream[1])
            )  # fmt: skip
        elif isinstance(e, CustomerChange):
            out["customer_changes"].append(
                (e.event_id, e.customer, e.plan, e.overrides, e.ts_ms, e.stream[0], e.stream[1])
            )
        elif isinstance(e, Audit):
            out["audit_log"].append(
                (e.event_id, e.customer, e.actor, e.action, e.team, e.detail, e.ts_ms,
                 e.stream[0], e.stream[1])
            )  # fmt: skip
        elif isinstance(e, Alert):
            out["alerts"].append(
                (e.event_id, e.customer, e.team, e.scope, e.period, e.rule, e.threshold_nanos,
                 e.used_nanos, e.limit_nanos, e.mode, e.reservation_id, e.ts_ms,
                 e.stream[0], e.stream[1])
            )  # fmt: skip
        elif isinstance(e, Correction):
            out["corrections"].append(
                (e.event_id, e.customer, e.kind, e.corrects, e.reason, e.actor, e.amount_nanos,
                 e.moves_json, e.uncovered_nanos, e.ts_ms, e.stream[0], e.stream[1])
            )  # fmt: skip
        elif isinstance(e, Credential):
            out["credentials"].append(
                (e.event_id, e.customer, e.namespace, e.credential_id, e.record, e.revoked,
                 e.ts_ms, e.stream[0], e.stream[1])
            )  # fmt: skip
        elif isinstance(e, Unparsed):
            fields = msgspec.json.encode(e.fields).decode()
            out["unparsed_events"].append((e.customer, e.stream[0], e.stream[1], fields, e.problem))
        else:
            assert isinstance(e, Expiry)  # its only row is its ledger entry
    return out


async def write_batch(connection: Connection, events: Sequence[Event]) -> None:
    """Store ``events`` in one transaction; events already stored are skipped, not doubled."""
    rows = rows_of(events)
    async with connection.transaction():
        await connection.execute(_CREATE_STAGING)
        for table in _TABLES:
            if rows[table.name]:
                await connection.copy_records_to_table(
                    table.stage, records=rows[table.name], columns=table.stage_columns
                )
                await connection.execute(table.move)
        if rows[_ALERTS.name]:  # each alert's deliveries, with it (ledger/webhooks.py)
            await connection.execute(enqueue_sql.format(alerts=_ALERTS.stage))
