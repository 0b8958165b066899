"""Closing a month: volume rebates, and what a recurring grant with a rollover (catalog
``plans.<p>.grants[i].rollover``) has left when its month ends moves into a bucket of its own,
up to the cap, expiring ``expires_after_months`` later: a grant with reason ``rollover`` and
an idempotency key that names the grant it came from, so that closing twice (or on two ledger
pods) rolls once.

What was left is the grant less what calls burned of it, as the ledger recorded them (refunds
and adjustments counted): a bucket that has expired is never spent, so once the ledger has
stored every entry appended before the month's end, the figure is final. The ledger service
closes a month on its own once that holds (server.py).

Volume pricing (``models.<m>.volume``): credits burn at the price in force during the month;
at its close, the units of each (model, unit kind) are priced again at the tier the month's
total reached, and the difference is granted back as one grant per customer and month (reason
``rebate``, in the catalog's ``rebate_credit_type``), rounded down to the nano-credit.
"""

from __future__ import annotations

from collections.abc import Sequence

from sidecar.catalog.model import Catalog
from sidecar.engine.periods import month_end_ms
from sidecar.engine.volume import PriceOf, volume_rebates
from sidecar.ledger.db import Connection
from sidecar.ledger.invoice import unit_price_femtos
from sidecar.ledger.state import CustomerFact
from sidecar.money import FEMTOS_PER_NANO
from sidecar.store.redis_store import RedisStore
from sidecar.times import format_time, ms_of, time_of

__all__ = [
    "customer_prices",
    "grant_rebates",
    "month_units",
    "roll_over",
]


_ENDED = """
SELECT g.customer, g.grant_id, g.idempotency_key, g.credit_type, g.amount_nanos,
       coalesce(sum(e.amount_nanos) FILTER
           (WHERE e.kind IN ('debit', 'refund', 'adjustment')), 0) AS moved
FROM credit_grants g
LEFT JOIN ledger_entries e ON e.customer = g.customer AND e.grant_id = g.grant_id
WHERE g.reason = 'plan' AND g.expires_at = $1
GROUP BY g.customer, g.grant_id, g.idempotency_key, g.credit_type, g.amount_nanos
ORDER BY g.customer, g.grant_id
"""


async def roll_over(
    connection: Connection, store: RedisStore, catalog: Catalog, end_ms: int, now_ms: int
) -> int:
    """Roll over the plan grants that expired at ``end_ms`` (a month's end); the number of
    rollover buckets granted now (0 when every one was granted before)."""
    granted = 0
    for row in await connection.fetch(_ENDED, time_of(end_ms)):
        kind, plan_id, index, _ = (row["idempotency_key"] or "::0:").split(":", 3)
        plan = catalog.plans.get(plan_id)
        if kind != "plan" or plan is None or int(index) >= len(plan.grants):
            continue
        spec = plan.grants[int(index)]
        if spec.rollover_cap_nanos is None or spec.credit_type != row["credit_type"]:
            continue
        amount = min(row["amount_nanos"] + row["moved"], spec.rollover_cap_nanos)
        if amount <= 0:
            continue
        expires = end_ms
        for _ in range(spec.rollover_months):
            expires = month_end_ms(expires)
        reply, _ = await store.grant(
            row["customer"],
            idempotency_key=f"rollover:{row['grant_id']}",
            credit_type=spec.credit_type,
            amount_nanos=amount,
            priority=catalog.credit_types[spec.credit_type].priority,
            expires_at_ms=expires,
            now_ms=now_ms,
            reason="rollover",
        )
        granted += reply.result == "granted"
    return granted


_MONTH_UNITS = """
SELECT e.model, u.key AS kind, sum(u.value::bigint) AS quantity
FROM usage_events e CROSS JOIN LATERAL jsonb_each_text(e.units) AS u
WHERE e.customer = $1 AND e.ts >= $2 AND e.ts < $3 AND e.model = ANY($4::text[])
GROUP BY e.model, u.key
"""
_VOLUME_CUSTOMERS = """
SELECT DISTINCT customer FROM usage_events
WHERE ts >= $1 AND ts < $2 AND model = ANY($3::text[]) ORDER BY customer
"""


async def month_units(
    connection: Connection, customer: str, start_ms: int, end_ms: int, models: Sequence[str]
) -> dict[tuple[str, str], int]:
    rows = await connection.fetch(
        _MONTH_UNITS, customer, time_of(start_ms), time_of(end_ms), list(models)
    )
    return {(r["model"], r["kind"]): int(r["quantity"]) for r in rows}


_LAST_CHANGE = """
SELECT plan, overrides, ts FROM customer_changes WHERE customer = $1 AND ts < $2
ORDER BY ts DESC, stream_ms DESC, stream_seq DESC LIMIT 1
"""


async def customer_prices(
    connection: Connection, catalog: Catalog, customer: str, at_ms: int
) -> PriceOf:
    """How ``customer`` was priced at ``at_ms``: its plan and contract then."""
    row = await connection.fetchrow(_LAST_CHANGE, customer, time_of(at_ms))
    change = None
    if row is not None:
        change = CustomerFact(plan=row["plan"], overrides=row["overrides"], ts_ms=ms_of(row["ts"]))
    return lambda model, kind: unit_price_femtos(catalog, customer, change, model, kind)


async def grant_rebates(
    connection: Connection,
    store: RedisStore,
    catalog: Catalog,
    start_ms: int,
    end_ms: int,
    now_ms: int,
) -> int:
    """Grant each customer its volume rebate of the month ``[start_ms, end_ms)`` in the
    catalog's ``rebate_credit_type`` (reason ``rebate``, one grant per customer and month,
    idempotent). The number of rebates granted now."""
    models = sorted(catalog.volume_femtos)
    if not models or catalog.rebate_credit_type is None:
        return 0
    credit_type = catalog.rebate_credit_type
    granted = 0
    month = format_time(start_ms)[:7]
    args = (time_of(start_ms), time_of(end_ms), models)
    for row in await connection.fetch(_VOLUME_CUSTOMERS, *args):
        customer = row["customer"]
        units = await month_units(connection, customer, start_ms, end_ms, models)
        price_of = await customer_prices(connection, catalog, customer, end_ms)
        rebate = sum(volume_rebates(catalog, units, price_of).values())
        amount = rebate // FEMTOS_PER_NANO
        if amount <= 0:
            continue
        reply, _ = await store.grant(
            customer, idempotency_key=f"rebate:{month}", credit_type=credit_type,
            amount_nanos=amount, priority=catalog.credit_types[credit_type].priority,
            expires_at_ms=None, now_ms=now_ms, reason="rebate",
        )  # fmt: skip
        granted += reply.result == "granted"
    return granted
