"""The store: Redis with Lua. The scripts are the one implementation of the store semantics."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import (
    BusyLoadingError,
    ClusterDownError,
    MasterDownError,
    NoScriptError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
    ResponseError,
    TryAgainError,
)

from sidecar.engine.burn import burn_key
from sidecar.engine.decide import ReservePlan
from sidecar.engine.periods import PeriodIds, minute_id, period_ids
from sidecar.engine.settle import Charge
from sidecar.errors import StoreError
from sidecar.logs import safe_url
from sidecar.metrics import Metrics
from sidecar.store import layout
from sidecar.store.records import (
    Attribution,
    BalanceState,
    BudgetRow,
    CommitReply,
    GrantReply,
    ReleaseReply,
    ReserveReply,
    SetBudgetResult,
    UpsertResult,
    decoder,
)
from sidecar.store.scripts import Script, load_scripts

__all__ = ["RedisStore", "StoredCustomer"]

log = logging.getLogger(__name__)
_json = msgspec.json.Encoder()


_UNAVAILABLE = (
    BusyLoadingError, ClusterDownError, MasterDownError, OutOfMemoryError, ReadOnlyError,
    TryAgainError,
)  # fmt: skip


def _unavailable(error: ResponseError) -> bool:
    """Replies that say this Redis cannot serve now (full, loading, a replica, a long script),
    as against an error of the command itself."""
    return isinstance(error, _UNAVAILABLE) or str(error).startswith("BUSY ")


class StoredCustomer(msgspec.Struct, frozen=True, kw_only=True):
    plan: str
    overrides: str
    """JSON text of the admin overrides, empty for none."""
    granted_month: str


class RedisStore:
    """Async access to one Redis; every driver error leaves here as StoreError."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 1.0,
        max_connections: int = 256,
        metrics: Metrics | None = None,
    ) -> None:
        self.url = url
        self.metrics = metrics if metrics is not None else Metrics()
        self.up = True
        """False from a failed command to the next one that succeeds: logged once each way."""
        self.timeout_s = timeout_s
        # redis-py's pool fails at once past max_connections, and its blocking pool costs tens
        # of microseconds per command; a semaphore bounds the commands in flight instead, so a
        # burst queues (up to the timeout) rather than errors, for almost nothing when idle.
        self._slots = asyncio.Semaphore(max_connections)
        self.client = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            max_connections=max_connections,
        )
        self.scripts = load_scripts()

    async def close(self) -> None:
        await self.client.aclose()

    async def _call(
        self, command: Callable[..., Awaitable[Any]], *args: Any, name: str | None = None
    ) -> Any:
        """Run one driver command; the one place driver errors become StoreError.

        ``name`` labels its metrics; the default is the command's own name.
        """
        label = name or str(getattr(command, "__name__", "command"))
        try:
            if self._slots.locked():
                await asyncio.wait_for(self._slots.acquire(), self.timeout_s)
            else:
                await self._slots.acquire()
            started = time.perf_counter_ns()  # the round trip, not the wait for a slot
            try:
                result = await command(*args)
            finally:
                self._slots.release()
        except (RedisError, OSError, TimeoutError) as error:
            self._failed(label, error, lua=name is not None)
            raise StoreError("Redis is unavailable or failed the command; retry") from error
        self.metrics.redis_round_trip(label, started)
        if not self.up:
            self.up = True
            self.metrics.redis_up.set(1)
            log.info("redis up again", extra={"redis": safe_url(self.url)})
        return result

    def _failed(self, label: str, error: BaseException, *, lua: bool) -> None:
        if isinstance(error, NoScriptError):  # after a Redis restart; loaded again at once
            return
        self.metrics.redis_errors.labels(label).inc()
        if isinstance(error, ResponseError) and not _unavailable(error):
            if lua:  # Redis answered: it is up, and the script is wrong
                self.metrics.lua_errors.labels(label).inc()
                log.error("lua script %s failed: %s", label, error)
            return
        if self.up:
            self.up = False
            self.metrics.redis_up.set(0)
            log.error("redis down: %s", error or repr(error), extra={"redis": safe_url(self.url)})

    async def _run(self, script: Script, customer: str, payload: dict[str, Any]) -> bytes:
        key, arg = layout.customer_key(customer), _json.encode(payload)
        evalsha = self.client.evalsha
        try:
            return bytes(await self._call(evalsha, script.sha, 1, key, arg, name=script.name))
        except StoreError as error:
            if not isinstance(error.__cause__, NoScriptError):
                raise
        await self._call(self.client.script_load, script.source)
        return bytes(await self._call(evalsha, script.sha, 1, key, arg, name=script.name))

    def subscriber(self) -> aioredis.Redis:
        """A separate client for pub/sub: it waits for messages, so it has no read timeout."""
        return aioredis.Redis.from_url(self.url, socket_timeout=None, health_check_interval=30)

    async def publish(self, channel: str, message: str) -> None:
        await self._call(self.client.publish, channel, message)

    async def ping(self) -> bool:
        return bool(await self._call(self.client.ping))

    async def reserve(
        self,
        customer: str,
        plan: ReservePlan,
        *,
        reservation_id: str,
        idempotency_key: str,
        now_ms: int,
        attribution: Attribution,
    ) -> ReserveReply:
        periods = period_ids(now_ms)
        payload: dict[str, Any] = {
            "rid": reservation_id,
            "now": now_ms,
            "exp": plan.expires_at_ms,
            "hold": str(plan.hold_nanos),
            "idem": layout.idem_key(customer, "r", idempotency_key),
            "idem_ttl": layout.IDEMPOTENCY_TTL_MS,
            "scopes": list(plan.scopes),
            "periods": _periods(periods),
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
            "rid": reservation_id,
            "now": now_ms,
            "whole": str(charge.whole_nanos),
            "rem": charge.remainder_femtos,
            "units": charge.units,
            "quota_units": charge.quota_units,
            "catalog_version": catalog_version,
        }
        return _committed.decode(await self._run(self.scripts["commit"], customer, payload))

    async def release(self, customer: str, reservation_id: str, now_ms: int) -> ReleaseReply:
        payload = {"rid": reservation_id, "now": now_ms}
        return _released.decode(await self._run(self.scripts["release"], customer, payload))

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
            "idem": layout.idem_key(customer, "g", idempotency_key),
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
        self, customer: str, *, scope: str, period: str, limit_nanos: int, mode: str, now_ms: int
    ) -> SetBudgetResult:
        payload = {
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

    async def upsert_customer(
        self, customer: str, *, plan: str, overrides: str, now_ms: int
    ) -> UpsertResult:
        payload = {"customer": customer, "plan": plan, "overrides": overrides, "now": now_ms}
        answer = await self._run(self.scripts["upsert_customer"], customer, payload)
        result: UpsertResult = msgspec.convert(answer.decode(), UpsertResult)
        return result

    async def register_customer(self, customer: str) -> None:
        """Add the customer to the registry the ledger reads to find its event stream."""
        await self._call(self.client.sadd, layout.REGISTRY_KEY, customer)

    async def get_customer(self, customer: str) -> StoredCustomer | None:
        fields = (layout.PLAN, layout.OVERRIDES, layout.GRANTED_MONTH)
        plan, overrides, granted = await self._call(
            self.client.hmget, layout.customer_key(customer), *fields
        )
        if plan is None:
            return None
        return StoredCustomer(
            plan=plan.decode(),
            overrides=(overrides or b"").decode(),
            granted_month=(granted or b"").decode(),
        )

    async def mark_granted(self, customer: str, month: str) -> None:
        key = layout.customer_key(customer)
        await self._call(self.client.hset, key, layout.GRANTED_MONTH, month)

    async def hold_attribution(self, customer: str, reservation_id: str) -> Attribution | None:
        """The attribution a hold was placed with, for pricing its commit after a restart."""
        key = layout.key(customer, layout.HOLDS)
        raw = await self._call(self.client.hget, key, reservation_id)
        return None if raw is None else _hold.decode(raw).ev

    async def quota_counters(self, customer: str, period_id: str, feature: str) -> int:
        """Units of a metered feature used and held in one period."""
        key = layout.key(customer, layout.usage_key(period_id))
        values = await self._call(
            self.client.hmget, key, layout.counter_fields(layout.quota_field(feature))
        )
        return sum(int(value) for value in values if value is not None)

    async def balance_state(self, customer: str, now_ms: int) -> BalanceState:
        """Buckets, holds, budgets with their use and this month's uncovered use: one read."""
        payload = {"periods": _periods(period_ids(now_ms)), "budgets_only": False}
        return _state.decode(await self._run(self.scripts["read_state"], customer, payload))

    async def budget_state(self, customer: str, now_ms: int) -> list[BudgetRow]:
        """Every budget of the customer with its use in the period in force: one read."""
        payload = {"periods": _periods(period_ids(now_ms)), "budgets_only": True}
        answer = await self._run(self.scripts["read_state"], customer, payload)
        return _state.decode(answer).budgets


class _HoldRecord(msgspec.Struct, frozen=True):
    ev: Attribution


def _periods(periods: PeriodIds) -> dict[str, str]:
    return {"day": periods.day, "month": periods.month, "lifetime": periods.lifetime}


_reserved = decoder(ReserveReply)
_committed = decoder(CommitReply)
_released = decoder(ReleaseReply)
_granted = decoder(GrantReply)
_state = decoder(BalanceState)
_hold = decoder(_HoldRecord)
