"""Margin alerts: the operator learns when a plan, or a customer on it, serves below the
plan's margin floor (``alerts.margin: "20%"`` in the catalog) in the month so far.

The ledger service checks every minute (with the month close). Margin is revenue (what the
calls were charged) minus their cost of serve, exact; a subject is below the floor when
``margin * 100 < floor * revenue`` (a month with cost and no revenue is below any floor). Each
subject alerts once per month: an ``alerts`` row (scope ``margin`` for a customer,
``margin:plan:<id>`` for a plan, rule ``m<floor>``) with deliveries to the **operator's**
webhook endpoints only (margin is what the operator earns; end customers never see it), a
log line and ``creditgate_ledger_margin_alerts_total``.
"""

from __future__ import annotations

import logging
from typing import Any

from sidecar.catalog.model import Catalog
from sidecar.engine.periods import period_ids, period_start_ms
from sidecar.ledger.db import Connection
from sidecar.money import FEMTOS_PER_NANO, format_credits, format_femtos
from sidecar.times import time_of

__all__ = ["MARGIN_EVENT", "below_floor", "check_margins", "margin_data"]

log = logging.getLogger(__name__)
MARGIN_EVENT = "alert.margin_below"

_MONTH = """
WITH plans AS (
    SELECT DISTINCT ON (customer) customer, plan FROM customer_changes
    ORDER BY customer, ts DESC, stream_ms DESC, stream_seq DESC
)
SELECT e.customer, p.plan, sum(e.cost_nanos) AS revenue, sum(e.serve_femtos) AS serve
FROM usage_events e JOIN plans p USING (customer)
WHERE e.ts >= $1 AND e.ts < $2
GROUP BY e.customer, p.plan ORDER BY e.customer
"""
_ALERT = """
INSERT INTO alerts (event_id, customer, team, scope, period, rule, threshold_nanos, used_nanos,
                    limit_nanos, mode, reservation_id, ts, stream_ms, stream_seq)
VALUES ($1, $2, NULL, $3, 'month', $4, $5, $6, $7, NULL, '', $8, 0, 0)
ON CONFLICT DO NOTHING RETURNING event_id
"""
_TO_OPERATOR = """
INSERT INTO webhook_deliveries (alert_id, endpoint_id)
SELECT $1, id FROM webhook_endpoints WHERE customer IS NULL AND disabled_at IS NULL
ON CONFLICT DO NOTHING
"""


def below_floor(revenue_nanos: int, serve_femtos: int, floor_percent: int) -> bool:
    """Whether the margin is below ``floor_percent`` of revenue; exact integers."""
    revenue = revenue_nanos * FEMTOS_PER_NANO
    return (revenue - serve_femtos) * 100 < floor_percent * revenue or (
        revenue == 0 and serve_femtos > 0
    )


def margin_data(row: Any) -> dict[str, Any]:
    """The ``data`` of a margin alert's webhook, from its ``alerts`` row."""
    scope: str = row["scope"]
    plan = scope.removeprefix("margin:plan:") if scope != "margin" else None
    return {
        "alert_id": row["event_id"],
        "customer": row["customer"] or None,
        "plan": plan,
        "period": "month",
        "floor": f"{row['rule'][1:]}%",
        "revenue": format_credits(row["limit_nanos"]),
        "margin": format_credits(row["used_nanos"]),
        "threshold": format_credits(row["threshold_nanos"]),
    }


async def _alert(
    connection: Connection, key: str, customer: str, scope: str, floor: int,
    revenue: int, serve: int, now_ms: int,
) -> bool:  # fmt: skip
    margin_nanos = (revenue * FEMTOS_PER_NANO - serve) // FEMTOS_PER_NANO
    inserted = await connection.fetchval(
        _ALERT, key, customer, scope, f"m{floor}", revenue * floor // 100, margin_nanos, revenue,
        time_of(now_ms),
    )  # fmt: skip
    if inserted is None:
        return False  # alerted already this month
    await connection.execute(_TO_OPERATOR, key)
    margin = format_femtos(revenue * FEMTOS_PER_NANO - serve)
    log.warning(
        "margin below the floor",
        extra={"scope": scope, "customer": customer or None, "floor": f"{floor}%",
               "revenue": format_credits(revenue), "margin": margin},
    )  # fmt: skip
    return True


async def check_margins(connection: Connection, catalog: Catalog, now_ms: int) -> int:
    """Alert every customer and plan below its plan's margin floor in the month of
    ``now_ms``, once per month; the number of new alerts."""
    floors = {p: plan.margin_floor_percent for p, plan in catalog.plans.items()
              if plan.margin_floor_percent is not None}  # fmt: skip
    if not floors:
        return 0
    month = period_ids(now_ms).month
    start = period_start_ms("month", now_ms)
    rows = await connection.fetch(_MONTH, time_of(start), time_of(now_ms + 1))
    plans: dict[str, list[int]] = {}
    alerted = 0
    async with connection.transaction():
        for row in rows:
            plan = row["plan"]
            if plan not in floors:
                continue
            revenue, serve = int(row["revenue"]), int(row["serve"])
            totals = plans.setdefault(plan, [0, 0])
            totals[0] += revenue
            totals[1] += serve
            if below_floor(revenue, serve, floors[plan]):
                key = f"margin:{row['customer']}:{month}"
                alerted += await _alert(
                    connection, key, row["customer"], "margin", floors[plan], revenue, serve,
                    now_ms,
                )  # fmt: skip
        for plan, (revenue, serve) in sorted(plans.items()):
            if below_floor(revenue, serve, floors[plan]):
                key = f"margin:plan:{plan}:{month}"
                alerted += await _alert(
                    connection, key, "", f"margin:plan:{plan}", floors[plan], revenue, serve,
                    now_ms,
                )  # fmt: skip
    return alerted
