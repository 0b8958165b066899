"""Closing a month: what a recurring grant with a rollover (catalog ``plans.<p>.grants[i].
rollover``) has left when its month ends moves into a bucket of its own, up to the cap, expiring
``expires_after_months`` later: a grant with reason ``rollover`` and an idempotency key that
names the grant it came from, so that closing twice (or on two ledger pods) rolls once.

What was left is the grant less what calls burned of it, as the ledger recorded them (refunds
and adjustments counted): a bucket that has expired is never spent, so once the ledger has
stored every entry appended before the month's end, the figure is final. The ledger service
closes a month on its own once that holds (server.py).
"""

from __future__ import annotations

from sidecar.catalog.model import Catalog
from sidecar.engine.periods import month_end_ms
from sidecar.ledger.db import Connection
from sidecar.store.redis_store import RedisStore
from sidecar.times import time_of

__all__ = ["roll_over"]

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
