"""The store: Redis with Lua. The scripts are the one implementation of the store semantics;
this module sends them their work orders and decodes their answers (store/records.py)."""

from __future__ import annotations

import hashlib
from functools import partial
from typing import Any, Literal

import msgspec

from sidecar.engine.burn import burn_key
from sidecar.engine.decide import ReservePlan
from sidecar.engine.periods import minute_id, period_ids
from sidecar.engine.settle import Charge
from sidecar.engine.tiers import script_ceilings, script_tiers
from sidecar.errors import StoreError
from sidecar.reservations import reserved_ms
from sidecar.store import layout
from sidecar.store.connection import RedisConnection
from sidecar.store.records import (
    Attribution,
    BalanceState,
    BudgetRow,
    CommitReply,
    GrantReply,
    GrowReply,
    ReleaseReply,
    ReserveReply,
    SetBudgetResult,
    UpsertResult,
    decoder,
)

__all__ = ["RedisStore", "StoredCustomer"]


class StoredCustomer(msgspec.Struct, frozen=True, kw_only=True):
    plan: str
    overrides: str
    """JSON text of the admin overrides, empty for none."""
    granted_month: str


class RedisStore(RedisConnection):
    """The store operations of one Redis, each one script or one read.

    A retried reserve, commit or release is answered as the first one for
    ``idempotency_window_ms`` (a reserve also while its hold is in flight)."""

    def __init__(
        self,
        url: str,
        *,
        idempotency_window_ms: int = layout.IDEMPOTENCY_WINDOW_MS,
        **connection: Any,
    ) -> None:
        super().__init__(url, **connection)
        self.idempotency_window_ms = idempotency_window_ms

    async def reserve(
        self,
        customer: str,
        plan: ReservePlan,
        *,
        reservation_id: str,
        idempotency_key: str,
        now_ms: int,
        attribution: Attribution,
        force: bool = False,
        grow: bool = False,
    ) -> ReserveReply:
        """Place a hold if every cap allows it; ``force``: place it whatever the caps say (the
        replay of a reserve already answered allowed in fallback); ``grow``: a hold that
        ``grow`` may make larger later."""
        periods = period_ids(now_ms)
        window = layout.record_window(now_ms)
        # A first attempt of this request was placed within the window or while its hold,
        # of the same ttl, may still be in flight.
        reach = max(self.idempotency_window_ms, plan.expires_at_ms - now_ms)
        payload: dict[str, Any] = {
            "rid": reservation_id,
            "now": now_ms,
            "exp": plan.expires_at_ms,
            "hold": str(plan.hold_nanos if plan.untiered_nanos is None else plan.untiered_nanos),
            "key": idempotency_key,
            "w": window,
            "seen": list(range(window, layout.record_window(now_ms - reach) - 1, -1)),
            "window": self.idempotency_window_ms,
            "scopes": list(plan.scopes),
            "periods": periods.by_period(),
            "rl": [
                {
                    key: value
                    for key, value in (
                        ("scope", limit.scope),
                        ("rpm", limit.requests_per_minute),
                        ("tpm", limit.tokens_per_minute),
                    )
                    if value is not None
                }
                for limit in plan.rate_limits
            ],
            "tokens": plan.tokens,
            "minute": minute_id(now_ms),
            "types": list(plan.credit_types),
            "overage_cap": str(plan.overage_cap_nanos),
            "month": periods.month,
            "ev": attribution,
        }
        if force:
            payload["force"] = True
        if plan.alert_budgets is not None:
            payload["alert_budgets"] = plan.alert_budgets
        if plan.alert_balance is not None:
            payload["alert_balance"] = plan.alert_balance
        if grow:
            payload["grow"] = True
        if plan.tiered:
            payload["tiered"] = [
                [layout.tier_field(part.model, part.kind), part.units, script_ceilings(part.tiers)]
                for part in plan.tiered
            ]
        if plan.session is not None:
            payload["session"] = plan.session
            if plan.session_budget_nanos is not None:
                payload["session_budget"] = str(plan.session_budget_nanos)
        if plan.quota is not None:
            payload["quota"] = {
                "feature": plan.quota.feature,
                "units": plan.quota.units,
                "limit": plan.quota.limit,
                "period": periods.of(plan.quota.period),
            }
        return _reserved.decode(await self._run(self.scripts["reserve"], customer, payload))

    async def commit(
        self,
        customer: str,
        reservation_id: str,
        *,
        charge: Charge,
        catalog_version: str,
        now_ms: int,
    ) -> CommitReply:
        payload = {
            **self._resolution(reservation_id, now_ms),
            "whole": str(charge.whole_nanos),
            "rem": charge.remainder_femtos,
            "units": charge.units,
            "quota_units": charge.quota_units,
            "catalog_version": catalog_version,
        }
        if charge.estimated:
            payload["estimated"] = True
        if charge.serve_femtos:
            payload["serve"] = str(charge.serve_femtos)
        if charge.tiered:
            payload["tiered"] = [
                [layout.tier_field(part.model, part.kind), part.units, script_tiers(part.tiers)]
                for part in charge.tiered
            ]
        answer = await self._run(self.scripts["commit"], customer, payload, durable=True)
        return _committed.decode(answer)

    async def grow(
        self,
        customer: str,
        reservation_id: str,
        *,
        step: int,
        delta_nanos: int,
        units: int,
        now_ms: int,
    ) -> GrowReply:
        """Add ``delta_nanos`` (and ``units`` quota units) to a growable hold if every cap it
        counts on allows it; step ``step`` applies once."""
        payload = {
            "rid": reservation_id, "step": step, "now": now_ms, "delta": str(delta_nanos),
            "units": units,
        }  # fmt: skip
        return _grown.decode(await self._run(self.scripts["grow"], customer, payload))

    async def release(self, customer: str, reservation_id: str, now_ms: int) -> ReleaseReply:
        payload = self._resolution(reservation_id, now_ms)
        return _released.decode(await self._run(self.scripts["release"], customer, payload))

    async def void(
        self, customer: str, *, reservation_id: str, idempotency_key: str, now_ms: int
    ) -> str:
        """Undo the reserve that would have placed ``reservation_id``, if it ran (void.lua)."""
        payload = {
            "rid": reservation_id,
            "key": idempotency_key,
            "w": layout.record_window(reserved_ms(reservation_id, now_ms)),
            "now": now_ms,
        }
        answer = await self._run(self.scripts["void"], customer, payload)
        result: str = msgspec.json.decode(answer)["result"]
        return result

    def _resolution(self, reservation_id: str, now_ms: int) -> dict[str, Any]:
        """What commit and release need to find a hold and remember its resolution."""
        return {
            "rid": reservation_id,
            "now": now_ms,
            "w": layout.record_window(reserved_ms(reservation_id, now_ms)),
            "window": self.idempotency_window_ms,
        }

    async def grant(
        self,
        customer: str,
        *,
        idempotency_key: str,
        credit_type: str,
        amount_nanos: int,
        priority: int,
        expires_at_ms: int | None,
        now_ms: int,
        reason: str,
    ) -> tuple[GrantReply, str]:
        """Add a bucket; returns the reply and the grant id, which derives from the key."""
        digest = hashlib.sha256(f"{customer}\0{idempotency_key}".encode()).hexdigest()
        grant_id = f"g_{digest[:20]}"
        payload: dict[str, Any] = {
            "idem": self.layout.idem_key(customer, "g", idempotency_key),
            "member": burn_key(priority, expires_at_ms, now_ms, grant_id, credit_type),
            "amount": str(amount_nanos),
            "customer": customer,
            "grant_id": grant_id,
            "credit_type": credit_type,
            "priority": priority,
            "now": now_ms,
            "reason": reason,
        }
        if expires_at_ms is not None:
            payload["expires_at"] = str(expires_at_ms)
        reply = _granted.decode(await self._run(self.scripts["grant"], customer, payload))
        return reply, grant_id

    async def set_budget(
        self,
        customer: str,
        *,
        scope: str,
        period: str,
        limit_nanos: int,
        mode: str,
        now_ms: int,
        audit: dict[str, str] | None = None,
    ) -> SetBudgetResult:
        """``audit``: the change's audit entry, appended with it (nothing when unchanged)."""
        payload = {
            "audit": _flat(audit),
            "customer": customer,
            "scope": scope,
            "period": period,
            "limit": str(limit_nanos),
            "mode": mode,
            "now": now_ms,
        }
        answer = await self._run(self.scripts["set_budget"], customer, payload)
        result: SetBudgetResult = msgspec.convert(answer.decode(), SetBudgetResult)
        return result

    async def correct(
        self, customer: str, idempotency_key: str, payload: dict[str, Any]
    ) -> dict[str, Any]:
        """A refund or a debit adjustment (store/lua/correct.lua; ``payload`` as documented
        there, without ``idem``). The script's answer."""
        payload = {**payload, "idem": self.layout.idem_key(customer, "x", idempotency_key)}
        answer: dict[str, Any] = msgspec.json.decode(
            await self._run(self.scripts["correct"], customer, payload)
        )
        return answer

    async def set_alerts(
        self, customer: str, field: str, rule: str, audit: dict[str, str]
    ) -> Literal["set", "removed", "unchanged"]:
        """The customer's own alert rule on ``field`` (a budget field or ALERT_BALANCE);
        ``rule`` empty removes it. ``audit`` is appended with the change."""
        payload = {"field": field, "rule": rule, "audit": _flat(audit)}
        answer = await self._run(self.scripts["set_alerts"], customer, payload)
        result: Literal["set", "removed", "unchanged"] = msgspec.convert(
            answer.decode(), Literal["set", "removed", "unchanged"]
        )
        return result

    async def alert_rules(self, customer: str) -> dict[str, str]:
        """The customer's own alert rules by field."""
        rules: Any = await self._call(self.client.hgetall, self.layout.key(customer, layout.ALERTS))
        return {k.decode(): v.decode() for k, v in rules.items()}

    async def upsert_customer(
        self,
        customer: str,
        *,
        plan: str,
        overrides: str,
        now_ms: int,
        audit: dict[str, str] | None = None,
    ) -> UpsertResult:
        """``audit``: the change's audit entry, appended with it (nothing when unchanged)."""
        payload = {
            "audit": _flat(audit),
            "customer": customer,
            "plan": plan,
            "overrides": overrides,
            "now": now_ms,
        }
        answer = await self._run(self.scripts["upsert_customer"], customer, payload)
        result: UpsertResult = msgspec.convert(answer.decode(), UpsertResult)
        return result

    async def get_customer(self, customer: str) -> StoredCustomer | None:
        """The customer as stored; None for no such customer. StoreError when Redis has lost
        its state: then a known customer must not be told it does not exist."""
        fields = (layout.PLAN, layout.OVERRIDES, layout.GRANTED_MONTH)
        plan, overrides, granted = await self._call(
            self.client.hmget, self.layout.customer_key(customer), *fields
        )
        if plan is None:
            shard = self.layout.shard(customer)
            if not await self._call(
                self.client.exists, self.layout.shard_key(shard, layout.GENERATION)
            ):
                raise StoreError(
                    f"Redis has lost its state: shard {shard} has no generation marker "
                    "(restarted empty, flushed, or fenced by the ledger); restore it with "
                    "`creditgate ledger rebuild --all`"
                )
            return None
        return StoredCustomer(
            plan=plan.decode(),
            overrides=(overrides or b"").decode(),
            granted_month=(granted or b"").decode(),
        )

    async def mark_granted(self, customer: str, month: str) -> None:
        key = self.layout.customer_key(customer)
        await self._call(self.client.hset, key, layout.GRANTED_MONTH, month)

    async def hold_attribution(self, customer: str, reservation_id: str) -> Attribution | None:
        """The attribution a hold in flight (or expired) was placed with, for pricing its
        commit after a restart; None once it is resolved, or for no such hold."""
        key = self.layout.key(customer, layout.HOLDS)
        raw = await self._call(self.client.hget, key, reservation_id)
        return None if raw is None else _hold.decode(raw).ev

    async def quota_counters(self, customer: str, period_id: str, feature: str) -> int:
        """Units of a metered feature used and held in one period."""
        key = self.layout.key(customer, layout.usage_key(period_id))
        values = await self._call(
            self.client.hmget, key, layout.counter_fields(layout.quota_field(feature))
        )
        return sum(int(value) for value in values if value is not None)

    async def balance_state(self, customer: str, now_ms: int) -> BalanceState:
        """Buckets, holds, budgets with their use and this month's uncovered use: one read."""
        payload = {"now": now_ms, "periods": period_ids(now_ms).by_period(), "budgets_only": False}
        return _state.decode(await self._run(self.scripts["read_state"], customer, payload))

    async def budget_state(self, customer: str, now_ms: int) -> list[BudgetRow]:
        """Every budget of the customer with its use in the period in force: one read."""
        payload = {"now": now_ms, "periods": period_ids(now_ms).by_period(), "budgets_only": True}
        answer = await self._run(self.scripts["read_state"], customer, payload)
        return _state.decode(answer).budgets

    async def append_event(self, customer: str, fields: dict[str, str]) -> None:
        """Append an event no script writes (an audit entry, service/audit.py; a credential's
        record, service/keys.py) to the customer's shard stream, where the ledger reads it like
        every movement."""
        stream = self.layout.stream_of(customer)
        await self._call(self.client.xadd, stream, fields, name="xadd")

    async def add_credential(
        self, namespace: str, credential_id: str, customer: str, record: bytes
    ) -> bool:
        """Store a new proxy key's or admin token's record; False when the id is taken (a
        retry). Listed under its customer either way, so that a retry completes an
        interrupted issue."""
        key = self.layout.credential_key(namespace, credential_id)
        added = await self._call(partial(self.client.set, nx=True), key, record, name="set")
        members = self.layout.credentials_key(namespace, customer)
        await self._call(self.client.sadd, members, credential_id)
        return bool(added)

    async def credential(self, namespace: str, credential_id: str) -> bytes | None:
        key = self.layout.credential_key(namespace, credential_id)
        answer: Any = await self._call(self.client.get, key)
        return None if answer is None else bytes(answer)

    async def replace_credential(self, namespace: str, credential_id: str, record: bytes) -> None:
        key = self.layout.credential_key(namespace, credential_id)
        await self._call(partial(self.client.set, xx=True), key, record, name="set")

    async def credentials(self, namespace: str, customer: str) -> list[bytes]:
        """The records of a customer's proxy keys or admin tokens, in id order."""
        members = self.layout.credentials_key(namespace, customer)
        ids: Any = await self._call(self.client.smembers, members)
        records = []
        for credential_id in sorted(i.decode() for i in ids):
            if (record := await self.credential(namespace, credential_id)) is not None:
                records.append(record)
        return records


def _flat(fields: dict[str, str] | None) -> list[str] | None:
    """A stream entry's fields as the flat list a script passes to XADD."""
    return None if fields is None else [item for pair in fields.items() for item in pair]


class _HoldRecord(msgspec.Struct, frozen=True):
    ev: Attribution


_reserved = decoder(ReserveReply)
_committed = decoder(CommitReply)
_released = decoder(ReleaseReply)
_grown = decoder(GrowReply)
_granted = decoder(GrantReply)
_state = decoder(BalanceState)
_hold = decoder(_HoldRecord)
