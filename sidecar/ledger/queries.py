"""What finance, invoicing and administrators ask the ledger: balance, usage, invoice, export.

Every query reads one consistent snapshot (REPEATABLE READ, read only); sums are exact
(PostgreSQL sums BIGINT into NUMERIC, read back as Python int); no float anywhere. Every
answer has a stated bound: ``USAGE_ROWS_MAX`` rows, ``EXPORT_FETCH_ROWS`` rows per fetch.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Literal

import msgspec

from sidecar.catalog.model import Catalog
from sidecar.engine.alerts import describe
from sidecar.engine.periods import period_start_ms
from sidecar.environment import LIVE
from sidecar.errors import InvalidInput
from sidecar.ledger.db import Connection
from sidecar.ledger.invoice import LineTotal, UnitTotal, invoice_preview
from sidecar.ledger.state import CustomerFact
from sidecar.ledger.wire import (
    AlertEntry,
    AlertsAnswer,
    AuditAnswer,
    AuditEntry,
    BalanceAnswer,
    BudgetRow,
    BudgetsAnswer,
    CreditTypeBalance,
    InvoiceCorrection,
    InvoicePreview,
    UsageAnswer,
    UsageRow,
    margin_of,
)
from sidecar.money import format_credits, format_femtos
from sidecar.times import format_time, ms_of, time_of

__all__ = [
    "DIMENSIONS",
    "EXPORT_COLUMNS",
    "EXPORT_FETCH_ROWS",
    "USAGE_ROWS_MAX",
    "Bucket",
    "alerts",
    "audit",
    "balance",
    "budgets",
    "export_rows",
    "invoice",
    "usage",
    "usage_sql",
]

USAGE_ROWS_MAX = 10_000
AUDIT_ROWS_MAX = 10_000
EXPORT_FETCH_ROWS = 2_000
DIMENSIONS = {
    "team": "team",
    "user": "user_id",
    "agent": "agent",
    "session": "session",
    "feature": "feature",
    "model": "model",
}
"""Usage may be grouped by any of these (name on the wire -> column)."""
Bucket = Literal["hour", "day"]

_BALANCE = """
SELECT g.credit_type, g.amount_nanos, g.expires_at,
       coalesce(m.debited, 0) AS debited, coalesce(m.expired, 0) AS expired,
       coalesce(m.adjusted, 0) AS adjusted
FROM credit_grants g
LEFT JOIN (
    SELECT grant_id,
           sum(amount_nanos) FILTER (WHERE kind = 'debit') AS debited,
           sum(amount_nanos) FILTER (WHERE kind = 'expiry') AS expired,
           sum(amount_nanos) FILTER (WHERE kind IN ('refund', 'adjustment')) AS adjusted
    FROM ledger_entries WHERE customer = $1 AND kind <> 'grant' AND ts <= $2
    GROUP BY grant_id
) m USING (grant_id)
WHERE g.customer = $1 AND g.ts <= $2
"""
_OVERAGE = """
SELECT coalesce(-sum(amount_nanos), 0) FROM ledger_entries
WHERE customer = $1 AND kind = 'overage' AND ts >= $2 AND ts < $3
"""
_OVERAGE_OWED = """
SELECT coalesce(-sum(amount_nanos), 0) FROM ledger_entries
WHERE customer = $1 AND (kind = 'overage' OR (kind = 'refund' AND grant_id IS NULL))
  AND ts <= $2
"""
"""Overage billed up to a time, less what refunds gave back of it."""
_CHANGES = (
    "SELECT plan, overrides, ts FROM customer_changes WHERE customer = $1 "
    "ORDER BY ts, stream_ms, stream_seq"
)
_INVOICE_LINES = """
SELECT model, feature, count(*) AS events, sum(cost_nanos) AS cost, sum(serve_femtos) AS serve
FROM usage_events WHERE customer = $1 AND ts >= $2 AND ts < $3
GROUP BY model, feature
"""
_INVOICE_UNITS = """
SELECT e.model, e.feature, e.catalog_version, width_bucket(e.ts, $4::timestamptz[]) AS segment,
       u.key AS kind, sum(u.value::bigint) AS quantity
FROM usage_events e CROSS JOIN LATERAL jsonb_each_text(e.units) AS u
WHERE e.customer = $1 AND e.ts >= $2 AND e.ts < $3
GROUP BY 1, 2, 3, 4, 5
"""
_INVOICE_CREDITS = """
SELECT credit_type, -sum(amount_nanos) AS amount FROM ledger_entries
WHERE customer = $1 AND kind = 'debit' AND ts >= $2 AND ts < $3
GROUP BY credit_type
"""
EXPORT_COLUMNS = (
    "event_id", "customer", "team", "user", "agent", "session", "feature", "model", "units",
    "cost", "uncovered", "burned", "catalog_version", "request_id", "tags", "reserved_at", "ts",
    "decided_by", "estimated", "serve_cost", "environment",
)  # fmt: skip
_EXPORT = """
SELECT event_id, customer, team, user_id, agent, session, feature, model, units::text AS units,
       cost_nanos, uncovered_nanos, burned::text AS burned, catalog_version, request_id,
       tags::text AS tags, reserved_at, ts, decided_by, estimated, serve_femtos
FROM usage_events WHERE ts >= $1 AND ts < $2 AND ($3::text IS NULL OR customer = $3)
ORDER BY ts, customer, stream_ms, stream_seq
"""


def _range(start_ms: int, end_ms: int) -> None:
    if end_ms <= start_ms:
        raise InvalidInput("end", "must be after start")


async def _changes(connection: Connection, customer: str) -> list[CustomerFact]:
    return [
        CustomerFact(plan=r["plan"], overrides=r["overrides"], ts_ms=ms_of(r["ts"]))
        for r in await connection.fetch(_CHANGES, customer)
    ]


async def balance(connection: Connection, customer: str, at_ms: int) -> BalanceAnswer:
    """Credits by type as the ledger records them at ``at_ms``."""
    at = time_of(at_ms)
    async with connection.transaction(isolation="repeatable_read", readonly=True):
        rows = await connection.fetch(_BALANCE, customer, at)
        overage = int(await connection.fetchval(_OVERAGE_OWED, customer, at))
    totals: dict[str, dict[str, int]] = {}
    for row in rows:
        t = totals.setdefault(
            row["credit_type"],
            {"granted": 0, "used": 0, "expired": 0, "adjusted": 0, "available": 0},
        )
        remaining = row["amount_nanos"] + int(row["debited"] + row["expired"] + row["adjusted"])
        t["granted"] += row["amount_nanos"]
        t["used"] -= int(row["debited"])
        t["adjusted"] += int(row["adjusted"])
        t["expired"] -= int(row["expired"])
        if row["expires_at"] is not None and ms_of(row["expires_at"]) <= at_ms:
            t["expired"] += remaining
        else:
            t["available"] += remaining
    return BalanceAnswer(
        customer=customer,
        at=format_time(at_ms),
        available=format_credits(sum(t["available"] for t in totals.values())),
        credit_types=[
            CreditTypeBalance(
                credit_type=credit_type, **{k: format_credits(v) for k, v in t.items()}
            )
            for credit_type, t in sorted(totals.items())
        ],
        overage=format_credits(overage),
    )


def _keys(group_by: Sequence[str], bucket: Bucket | None) -> list[str]:
    """Grouping expressions for an allow-listed grouping; InvalidInput names a bad one."""
    for name in group_by:
        if name not in DIMENSIONS:
            raise InvalidInput(
                "group_by", f"unknown dimension {name!r}; use any of {', '.join(DIMENSIONS)}"
            )
    if len(set(group_by)) != len(group_by):
        raise InvalidInput("group_by", "names a dimension twice")
    keys = [f"e.{DIMENSIONS[name]}" for name in group_by]
    if bucket is not None:
        keys.insert(0, f"date_trunc('{bucket}', e.ts, 'UTC')")
    return keys


def usage_sql(group_by: Sequence[str], bucket: Bucket | None) -> tuple[str, str]:
    """(totals per group, units per group and kind): the two usage queries."""
    keys = _keys(group_by, bucket)
    select = "".join(f"{key} AS k{i}, " for i, key in enumerate(keys))
    group = ", ".join(f"k{i}" for i in range(len(keys)))
    where = (
        "WHERE e.customer = $1 AND e.ts >= $2 AND e.ts < $3 AND ($4::text IS NULL OR e.team = $4)"
    )
    totals = (
        # coalesce: ungrouped, a window without events is one row of zeros, not NULLs.
        f"SELECT {select}count(*) AS events, coalesce(sum(e.cost_nanos), 0) AS cost, "
        f"coalesce(sum(e.uncovered_nanos), 0) AS uncovered, "
        f"coalesce(sum(e.serve_femtos), 0) AS serve "
        f"FROM usage_events e {where}"
        + (f" GROUP BY {group} ORDER BY {group}" if keys else "")
        + f" LIMIT {USAGE_ROWS_MAX + 1}"
    )
    units = (
        f"SELECT {select}u.key AS kind, sum(u.value::bigint) AS quantity FROM usage_events e "
        f"CROSS JOIN LATERAL jsonb_each_text(e.units) AS u {where} "
        f"GROUP BY {group + ', ' if keys else ''}u.key"
    )
    return totals, units


async def usage(
    connection: Connection,
    customer: str,
    start_ms: int,
    end_ms: int,
    group_by: Sequence[str],
    bucket: Bucket | None,
    team: str | None = None,
) -> UsageAnswer:
    """Events, spend and units per group (and per hour or day) in ``[start_ms, end_ms)``; of
    one team's calls only, when ``team`` is given."""
    _range(start_ms, end_ms)
    totals_sql, units_sql = usage_sql(group_by, bucket)
    width = len(group_by) + (bucket is not None)
    args = (customer, time_of(start_ms), time_of(end_ms), team)
    async with connection.transaction(isolation="repeatable_read", readonly=True):
        totals = await connection.fetch(totals_sql, *args)
        if len(totals) > USAGE_ROWS_MAX:
            raise InvalidInput(
                "group_by",
                f"more than {USAGE_ROWS_MAX} rows; narrow the time range or group by less",
            )
        units: dict[tuple[Any, ...], dict[str, int]] = {}
        for row in await connection.fetch(units_sql, *args):
            key = tuple(row[f"k{i}"] for i in range(width))
            units.setdefault(key, {})[row["kind"]] = int(row["quantity"])
    rows = []
    for row in totals:
        key = tuple(row[f"k{i}"] for i in range(width))
        dims = key[1:] if bucket is not None else key
        rows.append(
            UsageRow(
                bucket=format_time(ms_of(key[0])) if bucket is not None else None,
                group=dict(zip(group_by, dims, strict=True)),
                events=row["events"],
                cost=format_credits(int(row["cost"])),
                overage=format_credits(int(row["uncovered"])),
                units=dict(sorted(units.get(key, {}).items())),
                serve_cost=format_femtos(int(row["serve"])),
                margin=margin_of(int(row["cost"]), int(row["serve"])),
            )
        )
    revenue = sum(int(r["cost"]) for r in totals)
    serve = sum(int(r["serve"]) for r in totals)
    return UsageAnswer(
        customer=customer,
        team=team,
        start=format_time(start_ms),
        end=format_time(end_ms),
        group_by=list(group_by),
        bucket=bucket,
        rows=rows,
        events=sum(r["events"] for r in totals),
        cost=format_credits(revenue),
        serve_cost=format_femtos(serve),
        margin=margin_of(revenue, serve),
    )


async def invoice(
    connection: Connection,
    customer: str,
    start_ms: int,
    end_ms: int,
    catalogs: Mapping[str, Catalog],
    current: Catalog | None = None,
) -> InvoicePreview:
    """Line items per model and feature for calls committed in ``[start_ms, end_ms)``; with
    ``current`` (the catalog in force), the period's fees and true-up (ledger/invoice.py)."""
    _range(start_ms, end_ms)
    args = (customer, time_of(start_ms), time_of(end_ms))
    async with connection.transaction(isolation="repeatable_read", readonly=True):
        changes = await _changes(connection, customer)
        bounds = [time_of(change.ts_ms) for change in changes[1:]]
        lines = [
            LineTotal(
                model=r["model"],
                feature=r["feature"],
                events=r["events"],
                cost_nanos=int(r["cost"]),
                serve_femtos=int(r["serve"]),
            )
            for r in await connection.fetch(_INVOICE_LINES, *args)
        ]
        units = [
            UnitTotal(
                model=r["model"],
                feature=r["feature"],
                catalog_version=r["catalog_version"],
                segment=r["segment"],
                kind=r["kind"],
                quantity=int(r["quantity"]),
            )
            for r in await connection.fetch(_INVOICE_UNITS, *args, bounds)
        ]
        credits = {
            r["credit_type"]: int(r["amount"])
            for r in await connection.fetch(_INVOICE_CREDITS, *args)
        }
        overage = int(await connection.fetchval(_OVERAGE, *args))
        fixed = await connection.fetch(_INVOICE_CORRECTIONS, *args)
        fixes = [
            InvoiceCorrection(
                id=r["event_id"],
                at=format_time(ms_of(r["ts"])),
                kind=r["kind"],
                corrects=r["corrects"],
                reason=r["reason"],
                amount=format_credits(int(r["amount_nanos"])),
                uncovered=format_credits(int(r["uncovered_nanos"] or 0)),
            )
            for r in fixed
        ]
    preview = invoice_preview(
        customer,
        start_ms,
        end_ms,
        lines=lines,
        units=units,
        credits=credits,
        overage_nanos=overage,
        overage_refunded_nanos=sum(int(r["uncovered_nanos"] or 0) for r in fixed),
        changes=changes,
        catalogs=catalogs,
        current=current,
    )
    total = sum(int(r["amount_nanos"]) for r in fixed)
    return msgspec.structs.replace(preview, corrections=fixes, corrected=format_credits(total))


_INVOICE_CORRECTIONS = """
SELECT event_id, ts, kind, corrects, reason, amount_nanos, uncovered_nanos FROM corrections
WHERE customer = $1 AND ts >= $2 AND ts < $3
UNION ALL
SELECT event_id, ts, 'adjustment', NULL, 'credit', amount_nanos, 0 FROM credit_grants
WHERE customer = $1 AND ts >= $2 AND ts < $3 AND reason = 'adjustment'
ORDER BY ts, event_id
"""


def _burned_in_credits(text: str) -> str:
    """The buckets a call burned, amounts written as credits like every amount on the wire."""
    burned = msgspec.json.decode(text)
    for burn in burned:
        burn["amount"] = format_credits(int(burn["amount"]))
    return msgspec.json.encode(burned).decode()


async def export_rows(
    connection: Connection,
    start_ms: int,
    end_ms: int,
    customer: str | None,
    environment: str = LIVE,
) -> AsyncIterator[dict[str, Any]]:
    """Every usage line committed in ``[start_ms, end_ms)``, oldest first, fetched in pages
    of ``EXPORT_FETCH_ROWS`` from a server-side cursor (memory stays bounded); each names
    the ledger's ``environment``, so that an exported file keeps it."""
    _range(start_ms, end_ms)
    async with connection.transaction(isolation="repeatable_read", readonly=True):
        cursor = connection.cursor(
            _EXPORT,
            time_of(start_ms),
            time_of(end_ms),
            customer,
            prefetch=EXPORT_FETCH_ROWS,
        )
        async for r in cursor:
            yield {
                "event_id": r["event_id"],
                "customer": r["customer"],
                "team": r["team"],
                "user": r["user_id"],
                "agent": r["agent"],
                "session": r["session"],
                "feature": r["feature"],
                "model": r["model"],
                "units": r["units"],
                "cost": format_credits(r["cost_nanos"]),
                "uncovered": format_credits(r["uncovered_nanos"]),
                "burned": _burned_in_credits(r["burned"]),
                "catalog_version": r["catalog_version"],
                "request_id": r["request_id"],
                "tags": r["tags"],
                "reserved_at": format_time(ms_of(r["reserved_at"])),
                "ts": format_time(ms_of(r["ts"])),
                "decided_by": r["decided_by"],
                "estimated": r["estimated"],
                "serve_cost": format_femtos(int(r["serve_femtos"])),
                "environment": environment,
            }


async def audit(
    connection: Connection, customer: str, start_ms: int, end_ms: int, team: str | None = None
) -> AuditAnswer:
    """The admin changes of ``customer`` in ``[start_ms, end_ms)``, oldest first; those inside
    ``team`` only, when given."""
    _range(start_ms, end_ms)
    rows = await connection.fetch(
        "SELECT event_id, actor, action, team, detail::text AS detail, ts FROM audit_log "
        "WHERE customer = $1 AND ts >= $2 AND ts < $3 AND ($4::text IS NULL OR team = $4) "
        f"ORDER BY ts, stream_ms, stream_seq LIMIT {AUDIT_ROWS_MAX}",
        customer, time_of(start_ms), time_of(end_ms), team,
    )  # fmt: skip
    return AuditAnswer(
        customer=customer,
        start=format_time(start_ms),
        end=format_time(end_ms),
        entries=[
            AuditEntry(
                id=row["event_id"],
                at=format_time(ms_of(row["ts"])),
                actor=row["actor"],
                action=row["action"],
                team=row["team"],
                detail=msgspec.json.decode(row["detail"]),
            )
            for row in rows
        ],
    )


async def alerts(
    connection: Connection, customer: str, start_ms: int, end_ms: int, team: str | None = None
) -> AlertsAnswer:
    """The thresholds ``customer``'s commits crossed in ``[start_ms, end_ms)``; those of the
    team's budgets only, when ``team`` is given."""
    _range(start_ms, end_ms)
    rows = await connection.fetch(
        "SELECT * FROM alerts WHERE customer = $1 AND ts >= $2 AND ts < $3 "
        "AND ($4::text IS NULL OR scope = 'team:' || $4) "
        "AND left(rule, 1) <> 'm' "  # margin alerts are the operator's (ledger/margins.py)
        f"ORDER BY ts, stream_ms, stream_seq LIMIT {AUDIT_ROWS_MAX}",
        customer, time_of(start_ms), time_of(end_ms), team,
    )  # fmt: skip
    return AlertsAnswer(
        customer=customer,
        start=format_time(start_ms),
        end=format_time(end_ms),
        alerts=[
            AlertEntry(
                id=row["event_id"],
                at=format_time(ms_of(row["ts"])),
                scope=row["scope"],
                period=row["period"],
                rule=describe(row["rule"])[0],
                threshold=format_credits(row["threshold_nanos"]),
                used=format_credits(row["used_nanos"]),
                limit=None if row["limit_nanos"] is None else format_credits(row["limit_nanos"]),
                mode=row["mode"],
            )
            for row in rows
        ],
    )


_BUDGETS = """
SELECT DISTINCT ON (scope, period) scope, period, limit_nanos, mode FROM budget_changes
WHERE customer = $1 AND ts <= $2 ORDER BY scope, period, ts DESC, stream_ms DESC, stream_seq DESC
"""


async def budgets(
    connection: Connection, customer: str, at_ms: int, team: str | None = None
) -> BudgetsAnswer:
    """Each budget in force at ``at_ms`` (the last one set per scope and period) and what its
    node used in the period then running, by reservation time as Redis counts it (a session's
    budget: its lifetime); a team's budgets only, when ``team`` is given."""
    rows = []
    async with connection.transaction(isolation="repeatable_read", readonly=True):
        for row in await connection.fetch(_BUDGETS, customer, time_of(at_ms)):
            kind, _, node = row["scope"].partition(":")
            if team is not None and row["scope"] != f"team:{team}":
                continue
            column = DIMENSIONS.get(kind)
            used = await connection.fetchval(
                "SELECT coalesce(sum(cost_nanos), 0) FROM usage_events WHERE customer = $1 "
                "AND reserved_at >= $2 AND reserved_at <= $3"
                + (f" AND {column} = $4" if column is not None else " AND $4::text IS NULL"),
                customer, time_of(period_start_ms(row["period"], at_ms)), time_of(at_ms),
                node if column is not None else None,
            )  # fmt: skip
            rows.append(
                BudgetRow(
                    scope=row["scope"],
                    period=row["period"],
                    mode=row["mode"],
                    limit=format_credits(row["limit_nanos"]),
                    used=format_credits(int(used)),
                )
            )
    return BudgetsAnswer(customer=customer, at=format_time(at_ms), budgets=rows)
