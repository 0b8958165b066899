"""A customer history that touches every kind of Redis money state, and a way to read it all.

Used by the rebuild and reconcile tests: plan and admin grants (one expiring mid-scenario and
written off), budgets on the customer, a team and a session, calls on several subjects,
features with a monthly and a daily quota, a sub-nano price (the carry), and a customer in
overage. The clock moves by hours only: Redis keeps its own (real) time for key expiry.
"""

from __future__ import annotations

from typing import Any

from sidecar.service import Service
from sidecar.store import layout
from sidecar.store.redis_store import RedisStore
from sidecar.wire import BudgetScope, GrantRequest, SetBudgetRequest, UpsertCustomerRequest
from tests.conftest import Clock
from tests.ledger.conftest import Call

HOUR_MS = 3_600_000
# Not money, and not rebuilt: holds and their bookkeeping, reserve idempotency, rate windows.
_TRANSIENT = (":events", ":holds", ":hold_expiry")
_TRANSIENT_PREFIXES = (layout.RESERVES_PREFIX, layout.RESOLVED_PREFIX, layout.rate_key(0)[:-1])


async def play(service: Service, clock: Clock, call: Call) -> None:
    await service.upsert_customer("acme", UpsertCustomerRequest(plan="test"))
    await service.grant("acme", GrantRequest(credit_type="paid", amount="10", idempotency_key="p1"))
    soon = clock.now_ms + HOUR_MS
    await service.grant(
        "acme",
        GrantRequest(
            credit_type="promo", amount="0.5", idempotency_key="hour-promo", priority=0,
            expires_at=_iso(soon),
        ),
    )  # fmt: skip
    await service.set_budget("acme", SetBudgetRequest(limit="20", period="month"))
    await service.set_budget(
        "acme", SetBudgetRequest(limit="5", period="day", scope=BudgetScope(team="eng"))
    )
    await service.set_budget(
        "acme",
        SetBudgetRequest(limit="1", period="lifetime", scope=BudgetScope(session="run-1")),
    )
    await call(units={"input_tokens": 1200, "output_tokens": 300}, team="eng", user="u-1",
               agent="researcher", session="run-1")  # fmt: skip
    await call(units={"input_tokens": 50_000}, model="big", team="sales", user="u-2")
    await call(units={"tickets_resolved": 2}, feature="tickets", model=None, team="support",
               agent="triage")  # fmt: skip
    await call(units={"requests": 7}, feature="steps", model="tiny", agent="researcher")
    clock.advance(2 * HOUR_MS)  # the hour promo has expired: the next commit writes it off
    await call(units={"input_tokens": 800, "output_tokens": 100}, team="eng", user="u-1",
               agent="writer", session="run-1")  # fmt: skip
    await call(units={"requests": 4}, feature="steps", model="tiny")
    # A customer with no credits at all, in overage.
    await service.upsert_customer("globex", UpsertCustomerRequest(plan="overage"))
    await call("globex", units={"input_tokens": 3000, "output_tokens": 20}, team="eng")


def _iso(ms: int) -> str:
    from sidecar.times import format_time  # noqa: PLC0415

    return format_time(ms)


async def money_state(store: RedisStore, customer: str) -> dict[str, Any]:
    """Every key of the customer that is money, as plain data; holds in flight left out."""
    out: dict[str, Any] = {}
    head = store.layout.key(customer, "")
    async for raw in store.client.scan_iter(match=head + "*"):
        key = raw.decode()
        name = key.removeprefix(head)
        if key.endswith(_TRANSIENT) or name.startswith(_TRANSIENT_PREFIXES):
            continue
        kind = (await store.client.type(key)).decode()
        if kind == "hash":
            fields = {k.decode(): v.decode() for k, v in (await store.client.hgetall(key)).items()}
            out[name] = {f: v for f, v in fields.items() if not (f.endswith("held") and v == "0")}
        elif kind == "zset":
            out[name] = await store.client.zrange(key, 0, -1, withscores=True)
        else:
            out[name] = (await store.client.get(key) or b"").decode()
    return out
