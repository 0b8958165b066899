"""Corrections: refunds of committed calls and adjustments, made by the ledger service, which
knows every call (the sidecars keep a call's record for an hour only).

Each is a new entry that names what it corrects; nothing in the ledger is updated. It moves
the live balance in Redis atomically (store/lua/correct.lua, or grant.lua for a credit), is
idempotent by key, reaches the ledger through the stream like every movement, and shows on the
invoice preview.

* A **refund** returns up to what a committed call cost: first to the grants it burned, last
  burned first, then what no credit covered (its overage, which the invoice then owes back);
  refunds in parts return each nano once. The budgets the call counted in get the amount back
  (those of a period that has ended are gone with it); units, quotas and rate limits keep the
  call (it ran).
* An **adjustment** of ``-x`` debits ``x`` from the unexpired buckets of one credit type, in
  burn order (refused when they hold less); ``+x`` grants ``x`` of it (reason ``adjustment``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import asyncpg
import msgspec

from sidecar.access import Caller, require
from sidecar.catalog.model import Catalog
from sidecar.engine.burn import burn_key
from sidecar.engine.decide import check_idempotency_key, subject_scopes
from sidecar.engine.periods import period_ids
from sidecar.errors import InvalidInput, NotFound
from sidecar.ids import check_id
from sidecar.ledger.audit import record_audit
from sidecar.ledger.db import Connection, Pool
from sidecar.money import format_credits, parse_signed_credits
from sidecar.store.redis_store import RedisStore
from sidecar.text import Text
from sidecar.times import ms_of

__all__ = ["AdjustRequest", "Corrections", "RefundRequest", "adjust", "refund"]

REASON_MAX = 500


class RefundRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    idempotency_key: str
    event_id: str
    """The committed call's event id (its reservation id)."""
    reason: Text
    amount: str | None = None
    """Credits to return; absent: all that the call cost and was not refunded yet."""


class AdjustRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    idempotency_key: str
    amount: str
    """Signed credits: ``"-5"`` debits, ``"5"`` credits."""
    credit_type: str
    reason: Text
    corrects: Text | None = None


def _reason(text: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput("reason", "is required: say why, for the customer and for finance")
    if len(text) > REASON_MAX:
        raise InvalidInput("reason", f"is {len(text)} characters; use at most {REASON_MAX}")
    return text


def _event_id(prefix: str, customer: str, key: str) -> str:
    return prefix + hashlib.sha256(f"{customer}\0{key}".encode()).hexdigest()[:24]


def _answer(result: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """The script's answer with amounts in credits, and ``fields``; InvalidInput naming
    ``amount`` when the correction did not fit (nothing moved)."""
    if result["result"] == "over_refund":
        left = format_credits(int(result["left"]))
        raise InvalidInput("amount", f"is more than the {left} credits of the call left to refund")
    if result["result"] == "insufficient_credits":
        left = format_credits(int(result["left"]))
        raise InvalidInput(
            "amount", f"is more than the {left} credits left in unexpired buckets of that type"
        )
    out = {**fields, "result": result["result"]}
    if "amount" not in out and "amount" in result:  # a refund of all that was left
        out["amount"] = format_credits(int(result["amount"]))
    if "uncovered" in result:
        out["uncovered"] = format_credits(int(result["uncovered"]))
    moves = result.get("moves")
    out["moves"] = [
        {**m, "amount": format_credits(int(m["amount"]))}
        for m in (moves if isinstance(moves, list) else [])
    ]
    return out


def _counted_in(call: asyncpg.Record) -> dict[str, Any]:
    """The money counters a call counted in, as reserve.lua named them from its hold."""
    periods = period_ids(ms_of(call["reserved_at"]))
    out: dict[str, Any] = {
        "scopes": list(subject_scopes(call["team"], call["user_id"], call["agent"])),
        "periods": periods.by_period(),
    }
    if call["session"] is not None:
        out["session"] = call["session"]
    return out


async def refund(
    connection: Connection,
    store: RedisStore,
    customer: str,
    request: RefundRequest,
    caller: Caller,
    now_ms: int,
) -> dict[str, Any]:
    check_idempotency_key("idempotency_key", request.idempotency_key)
    reason = _reason(request.reason)
    call = await connection.fetchrow(
        "SELECT burned, uncovered_nanos, team, user_id, agent, session, reserved_at "
        "FROM usage_events WHERE customer = $1 AND event_id = $2",
        customer, request.event_id,
    )  # fmt: skip
    if call is None:
        raise NotFound(
            "event_id",
            f"customer {customer!r} has no committed call {request.event_id!r} in the ledger",
        )
    raw = call["burned"]
    burned = msgspec.json.decode(raw) if isinstance(raw, str | bytes) else raw
    burns = list(burned.values()) if isinstance(burned, dict) else list(burned)
    cap = sum(int(b["amount"]) for b in burns) + call["uncovered_nanos"]
    done = int(
        await connection.fetchval(
            "SELECT coalesce(sum(amount_nanos), 0) FROM corrections "
            "WHERE customer = $1 AND kind = 'refund' AND corrects = $2",
            customer,
            request.event_id,
        )
    )
    fields: dict[str, Any] = {"event_id": request.event_id}
    amount = "all"  # what is left as the script counts it: the ledger may not have the last
    if request.amount is not None:
        nanos = parse_signed_credits(request.amount, "amount")
        if nanos <= 0:
            raise InvalidInput("amount", "must be above 0; leave it out to refund all that is left")
        amount, fields["amount"] = str(nanos), format_credits(nanos)
    grants = {
        row["grant_id"]: row
        for row in await connection.fetch(
            "SELECT grant_id, priority, expires_at, ts FROM credit_grants "
            "WHERE customer = $1 AND grant_id = ANY($2::text[])",
            customer,
            [b["grant_id"] for b in burns],
        )
    }
    members = []
    for b in reversed(burns):
        g = grants[b["grant_id"]]
        expires = None if g["expires_at"] is None else ms_of(g["expires_at"])
        member = burn_key(g["priority"], expires, ms_of(g["ts"]), b["grant_id"], b["credit_type"])
        members.append({**b, "member": member})
    result = await store.correct(
        customer,
        request.idempotency_key,
        {
            "event_id": _event_id("rf_", customer, request.idempotency_key),
            "customer": customer, "kind": "refund", "amount": amount, "reason": reason,
            "actor": caller.actor, "now": now_ms, "corrects": request.event_id,
            "cap": str(cap), "refunded": str(done), "burns": members,
            **_counted_in(call),
        },
    )  # fmt: skip
    if result["result"] == "over_refund" and request.amount is None:
        raise InvalidInput(
            "event_id",
            f"call {request.event_id!r} has nothing left to refund: all it cost is"
            " refunded already",
        )
    return _answer(result, **fields)


async def adjust(
    store: RedisStore,
    catalog: Catalog,
    customer: str,
    request: AdjustRequest,
    caller: Caller,
    now_ms: int,
) -> dict[str, Any]:
    check_idempotency_key("idempotency_key", request.idempotency_key)
    reason = _reason(request.reason)
    credit_type = catalog.credit_types.get(request.credit_type)
    if credit_type is None:
        known = ", ".join(catalog.credit_types)
        raise InvalidInput(
            "credit_type", f"unknown credit type {request.credit_type!r}; use one of {known}"
        )
    amount = parse_signed_credits(request.amount, "amount")
    if amount == 0:
        raise InvalidInput("amount", 'must not be 0: "-5" debits 5 credits, "5" credits them')
    if amount > 0:
        reply, grant_id = await store.grant(
            customer, idempotency_key=f"adjust:{request.idempotency_key}",
            credit_type=request.credit_type, amount_nanos=amount, priority=credit_type.priority,
            expires_at_ms=None, now_ms=now_ms, reason="adjustment",
        )  # fmt: skip
        result = "adjusted" if reply.result == "granted" else "already_done"
        moves = [{"grant_id": grant_id, "credit_type": request.credit_type,
                  "amount": format_credits(amount)}]  # fmt: skip
        return {"result": result, "amount": format_credits(amount), "moves": moves}
    payload = {
        "event_id": _event_id("aj_", customer, request.idempotency_key),
        "customer": customer, "kind": "adjustment", "amount": str(-amount), "reason": reason,
        "actor": caller.actor, "now": now_ms, "credit_type": request.credit_type,
    }  # fmt: skip
    if request.corrects is not None:
        payload["corrects"] = request.corrects
    answer = await store.correct(customer, request.idempotency_key, payload)
    return _answer(answer, amount=format_credits(amount))


class Corrections:
    """The one entry point of both transports (HTTP and gRPC): a refund or an adjustment on
    ``pool`` and ``store``, the operator's only, recorded in the customer's audit trail."""

    def __init__(
        self,
        pool: Pool,
        store: RedisStore,
        catalog: Callable[[], Catalog],
        clock: Callable[[], int],
    ) -> None:
        self._pool = pool
        self._store = store
        self._catalog = catalog
        self._clock = clock

    async def refund(self, customer: str, request: RefundRequest, caller: Caller) -> dict[str, Any]:
        return await self._apply(customer, request, caller)

    async def adjust(self, customer: str, request: AdjustRequest, caller: Caller) -> dict[str, Any]:
        return await self._apply(customer, request, caller)

    async def _apply(
        self, customer: str, request: RefundRequest | AdjustRequest, caller: Caller
    ) -> dict[str, Any]:
        customer = check_id("customer", customer)
        require(caller, customer, "operator")
        now = self._clock()
        async with self._pool.acquire() as connection:
            if isinstance(request, RefundRequest):
                action = "refund"
                answer = await refund(connection, self._store, customer, request, caller, now)
            else:
                action = "adjustment"
                catalog = self._catalog()
                answer = await adjust(self._store, catalog, customer, request, caller, now)
            detail = {"id": request.idempotency_key, **answer}
            await record_audit(connection, customer, caller.actor, action, detail)
        return answer
