"""Read what the ledger knows about one customer, aggregated in PostgreSQL, as ``LedgerFacts``.

Lifetime counters need every event of the customer, so the sums are done by the database
(one row per counter, not per event); day and month counters are only summed for periods
that ``reserve.lua`` may still keep alive.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import msgspec

from sidecar.ledger.db import Connection
from sidecar.ledger.state import (
    AlertRuleFact,
    BudgetFact,
    CustomerFact,
    GrantFact,
    LedgerFacts,
    MoneyRow,
    QuotaRow,
    SessionRow,
    TierRow,
)
from sidecar.store import layout
from sidecar.times import ms_of, time_of

__all__ = ["ledger_customers", "load_facts"]

_DAY = "'d' || to_char(e.reserved_at AT TIME ZONE 'UTC', 'YYYYMMDD')"
_MONTH = "'m' || to_char(e.reserved_at AT TIME ZONE 'UTC', 'YYYYMM')"

_CHANGES = """
SELECT plan, overrides, ts FROM customer_changes WHERE customer = $1
ORDER BY ts, stream_ms, stream_seq
"""
_GRANTS = """
SELECT g.grant_id, g.credit_type, g.amount_nanos, g.priority, g.expires_at, g.ts, g.reason,
       g.idempotency_key, coalesce(m.moved, 0) AS moved
FROM credit_grants g
LEFT JOIN (SELECT grant_id, sum(amount_nanos) AS moved FROM ledger_entries
           WHERE customer = $1 AND kind <> 'grant' GROUP BY grant_id) m USING (grant_id)
WHERE g.customer = $1
"""
_BUDGETS = """
SELECT DISTINCT ON (scope, period) scope, period, limit_nanos, mode
FROM budget_changes WHERE customer = $1
ORDER BY scope, period, stream_ms DESC, stream_seq DESC
"""
_REFUNDED = """
LEFT JOIN (SELECT corrects, sum(amount_nanos) AS amount, sum(uncovered_nanos) AS uncovered
           FROM corrections
           WHERE customer = $1 AND kind = 'refund' AND uncovered_nanos IS NOT NULL
           GROUP BY corrects) r
       ON r.corrects = e.event_id
"""
"""A call's refunds, which gave its budgets (and its uncovered cost) back: ``r.amount``,
``r.uncovered`` (not those from before 0011, which left the budgets' counters as they were)."""
_MONEY = f"""
SELECT p.period, s.scope, sum(e.cost_nanos - coalesce(r.amount, 0)) AS cost,
       sum(e.uncovered_nanos - coalesce(r.uncovered, 0)) AS uncovered, max(e.reserved_at) AS last
FROM usage_events e
{_REFUNDED}
CROSS JOIN LATERAL (VALUES ('life'),
    (CASE WHEN e.reserved_at >= $2 THEN {_MONTH} END),
    (CASE WHEN e.reserved_at >= $3 THEN {_DAY} END)) AS p(period)
CROSS JOIN LATERAL (VALUES ('customer'), ('team:' || e.team), ('user:' || e.user_id),
    ('agent:' || e.agent)) AS s(scope)
WHERE e.customer = $1 AND p.period IS NOT NULL AND s.scope IS NOT NULL
GROUP BY 1, 2
"""
_SESSIONS = f"""
SELECT e.session, sum(e.cost_nanos - coalesce(r.amount, 0)) AS cost, max(e.reserved_at) AS last
FROM usage_events e
{_REFUNDED}
WHERE e.customer = $1 AND e.session IS NOT NULL
GROUP BY e.session HAVING max(e.reserved_at) >= $2
"""
_QUOTAS = f"""
SELECT e.feature, e.catalog_version, width_bucket(e.reserved_at, $4::timestamptz[]) AS segment,
       CASE WHEN e.reserved_at >= $3 THEN {_DAY} END AS day,
       CASE WHEN e.reserved_at >= $2 THEN {_MONTH} END AS month,
       u.key AS kind, sum(u.value::bigint) AS quantity, max(e.reserved_at) AS last
FROM usage_events e CROSS JOIN LATERAL jsonb_each_text(e.units) AS u
WHERE e.customer = $1
GROUP BY 1, 2, 3, 4, 5, 6
"""
_TIERS = f"""
SELECT {_MONTH} AS month, e.model, u.key AS kind, e.catalog_version,
       width_bucket(e.reserved_at, $3::timestamptz[]) AS segment,
       sum(u.value::bigint) AS quantity, max(e.reserved_at) AS last
FROM usage_events e CROSS JOIN LATERAL jsonb_each_text(e.units) AS u
WHERE e.customer = $1 AND e.model IS NOT NULL AND e.reserved_at >= $2
GROUP BY 1, 2, 3, 4, 5
"""
_CARRY = """
SELECT carry_femtos FROM usage_events WHERE customer = $1 AND carry_femtos IS NOT NULL
ORDER BY stream_ms DESC, stream_seq DESC LIMIT 1
"""
_ALERT_RULES = """
SELECT DISTINCT ON (detail->>'scope', coalesce(detail->>'period', ''))
       detail->>'scope' AS scope, detail->>'period' AS period,
       detail->'thresholds' AS thresholds
FROM audit_log WHERE customer = $1 AND action = 'alerts.set'
ORDER BY detail->>'scope', coalesce(detail->>'period', ''), stream_ms DESC, stream_seq DESC
"""
_CUSTOMERS = "SELECT DISTINCT customer FROM customer_changes ORDER BY customer"


def _start_of_day(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


async def ledger_customers(connection: Connection) -> list[str]:
    """Every customer the ledger has a plan for."""
    return [row["customer"] for row in await connection.fetch(_CUSTOMERS)]


async def load_facts(connection: Connection, customer: str, now_ms: int) -> LedgerFacts:
    """Everything ``expected_state`` needs about ``customer``, read in one snapshot."""
    now = time_of(now_ms)
    day_from = _start_of_day(now - timedelta(milliseconds=layout.DAY_COUNTER_TTL_MS))
    month_from = _start_of_day(now - timedelta(milliseconds=layout.MONTH_COUNTER_TTL_MS))
    month_from = month_from.replace(day=1)
    session_from = now - timedelta(milliseconds=layout.SESSION_TTL_MS)
    async with connection.transaction(isolation="repeatable_read", readonly=True):
        changes = [
            CustomerFact(plan=r["plan"], overrides=r["overrides"], ts_ms=ms_of(r["ts"]))
            for r in await connection.fetch(_CHANGES, customer)
        ]
        bounds = [time_of(change.ts_ms) for change in changes[1:]]
        grants = [
            GrantFact(
                grant_id=r["grant_id"],
                credit_type=r["credit_type"],
                amount_nanos=r["amount_nanos"],
                priority=r["priority"],
                expires_at_ms=ms_of(r["expires_at"]) if r["expires_at"] is not None else None,
                granted_ms=ms_of(r["ts"]),
                reason=r["reason"],
                idempotency_key=r["idempotency_key"],
                moved_nanos=int(r["moved"]),
            )
            for r in await connection.fetch(_GRANTS, customer)
        ]
        budgets = [
            BudgetFact(
                scope=r["scope"], period=r["period"], limit_nanos=r["limit_nanos"], mode=r["mode"]
            )
            for r in await connection.fetch(_BUDGETS, customer)
        ]
        money = [
            MoneyRow(
                period=r["period"],
                scope=r["scope"],
                cost_nanos=int(r["cost"]),
                uncovered_nanos=int(r["uncovered"]),
                last_reserved_ms=ms_of(r["last"]),
            )
            for r in await connection.fetch(_MONEY, customer, month_from, day_from)
        ]
        sessions = [
            SessionRow(
                session=r["session"], cost_nanos=int(r["cost"]), last_reserved_ms=ms_of(r["last"])
            )
            for r in await connection.fetch(_SESSIONS, customer, session_from)
        ]
        quotas = [
            QuotaRow(
                feature=r["feature"],
                catalog_version=r["catalog_version"],
                segment=r["segment"],
                day=r["day"],
                month=r["month"],
                kind=r["kind"],
                quantity=int(r["quantity"]),
                last_reserved_ms=ms_of(r["last"]),
            )
            for r in await connection.fetch(_QUOTAS, customer, month_from, day_from, bounds)
        ]
        tiers = [
            TierRow(
                month=r["month"], model=r["model"], kind=r["kind"],
                catalog_version=r["catalog_version"], segment=r["segment"],
                quantity=int(r["quantity"]), last_reserved_ms=ms_of(r["last"]),
            )
            for r in await connection.fetch(_TIERS, customer, month_from, bounds)
        ]  # fmt: skip
        carry = await connection.fetchval(_CARRY, customer)
        rules = [
            AlertRuleFact(
                scope=r["scope"], period=r["period"],
                thresholds=tuple(msgspec.json.decode(r["thresholds"], type=list[str])),
            )
            for r in await connection.fetch(_ALERT_RULES, customer)
        ]  # fmt: skip
    return LedgerFacts(
        customer=customer,
        changes=tuple(changes),
        grants=tuple(grants),
        budgets=tuple(budgets),
        money=tuple(money),
        sessions=tuple(sessions),
        quotas=tuple(quotas),
        carry_femtos=carry,
        tiers=tuple(tiers),
        alert_rules=tuple(rules),
    )
