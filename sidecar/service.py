"""The application service: one async API under HTTP and gRPC alike.

Requests and responses are the wire types of DESIGN.md. Deciding what can be decided locally
is the engine's job, moving money atomically is the store's; this layer wires them together,
turns store trouble into ``store_unavailable`` and names every bad field.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

import msgspec
from cachetools import TLRUCache
from prometheus_client.core import Metric

from sidecar.catalog.compile import compile_overrides
from sidecar.catalog.model import MAX_PRIORITY, Catalog
from sidecar.customers import CustomerDirectory
from sidecar.engine.burn import parse_burn_key
from sidecar.engine.customer import CustomerSnapshot
from sidecar.engine.decide import (
    Denial,
    check_idempotency_key,
    plan_check,
    plan_reserve,
    price_usage,
    subject_scopes,
    validate_check,
    validate_reserve,
)
from sidecar.engine.periods import period_ids
from sidecar.engine.pricing import split_femtos
from sidecar.errors import InvalidInput, NotFound, RequestError, StoreError
from sidecar.ids import check_id
from sidecar.metrics import Metrics, counter, gauge
from sidecar.money import MAX_AMOUNT_NANOS, format_credits, parse_credits
from sidecar.store.keys import customer_of, new_reservation_id
from sidecar.store.redis_store import RedisStore
from sidecar.wire import (
    BalanceResponse,
    BucketState,
    BudgetsResponse,
    BudgetState,
    BurnedCredits,
    CheckRequest,
    CheckResponse,
    CommitRequest,
    CommitResponse,
    CustomerResponse,
    GrantRequest,
    GrantResponse,
    ReleaseRequest,
    ReleaseResponse,
    ReserveRequest,
    ReserveResponse,
    SetBudgetRequest,
    SetBudgetResponse,
    UpsertCustomerRequest,
)

__all__ = ["Service", "wall_clock_ms"]

log = logging.getLogger(__name__)
LOCAL_HOLDS_MAX = 100_000


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"


def _parse_time(field: str, text: str) -> int:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise InvalidInput(
            field, f"must be an RFC 3339 time with a zone, like 2027-01-01T00:00:00Z, got {text!r}"
        )
    return int(moment.timestamp() * 1000)


def _required_rid(rid: str) -> str:
    # gRPC (proto3) cannot send "" apart from absent, and reports it missing; so does HTTP.
    if not rid:
        raise InvalidInput("reservation_id", "is required")
    return rid


def _credits(nanos: Any) -> str:
    return format_credits(int(nanos))


Q = TypeVar("Q")
R = TypeVar("R")
Operation = Callable[["Service", Q], Awaitable[R]]


def _measured(operation: str) -> Callable[[Operation[Q, R]], Operation[Q, R]]:
    """Time an operation and count its answer: by outcome (allowed, denied, settled, or the
    error code) and by reason or result code."""

    def wrap(method: Operation[Q, R]) -> Operation[Q, R]:
        @functools.wraps(method)
        async def measured(self: Service, request: Q) -> R:
            started = time.perf_counter_ns()
            try:
                response = await method(self, request)
            except RequestError as error:
                self.metrics.decided(operation, error.code, error.code, started)
                raise
            except Exception:
                self.metrics.decided(operation, "internal", "internal", started)
                raise
            self.metrics.decided(operation, *_answer(response), started)
            return response

        return measured

    return wrap


def _context(request: ReserveRequest, version: str) -> dict[str, str]:
    """What a log line about a reserve carries: never the customer's data, the ids to find it."""
    return {"request_id": request.idempotency_key, "catalog_version": version}


def _answer(response: Any) -> tuple[str, str]:
    """(outcome, reason) of a response: allowed or denied with its reason, or settled."""
    if isinstance(response, CheckResponse | ReserveResponse):
        return ("allowed" if response.allowed else "denied"), response.reason
    return "settled", response.result


def _hold_expiry(_rid: str, hold: tuple[dict[str, str], int], _now: object) -> int:
    return hold[1]


class Service:
    """check, reserve, commit, release, balance, and the admin operations."""

    def __init__(
        self,
        store: RedisStore,
        catalog: Catalog,
        *,
        clock: Callable[[], int] = wall_clock_ms,
        customers: CustomerDirectory | None = None,
    ) -> None:
        self.store = store
        self.metrics: Metrics = store.metrics
        self.catalog = catalog
        self.metrics.catalog_in_force(catalog.version)
        self.clock = clock
        # Not `customers or ...`: an empty directory has len 0, so it is falsy.
        self.customers = customers if customers is not None else CustomerDirectory(store)
        # Attribution and expiry of the holds placed here, so their commit needs no extra read.
        self._holds: TLRUCache[str, tuple[dict[str, str], int]] = TLRUCache(
            LOCAL_HOLDS_MAX, _hold_expiry, timer=clock
        )
        self.metrics.watch(self._state)

    def _state(self) -> Iterator[Metric]:
        customers = self.customers
        yield counter(
            "creditgate_customer_cache_hits", "Customer lookups answered from the cache.",
            customers.hits,
        )  # fmt: skip
        yield counter(
            "creditgate_customer_cache_misses", "Customer lookups that read Redis.",
            customers.misses,
        )  # fmt: skip
        yield gauge("creditgate_customer_cache_entries", "Customers cached.", len(customers))
        self._holds.expire()
        yield gauge(
            "creditgate_holds_open",
            "Holds this sidecar placed that are not yet committed, released or expired.",
            len(self._holds),
        )

    def swap_catalog(self, catalog: Catalog) -> None:
        """Replace the catalog whole; requests in flight keep the one they started with."""
        self.catalog = catalog
        self.metrics.catalog_in_force(catalog.version)

    async def _customer(
        self, customer: str, catalog: Catalog, now_ms: int
    ) -> CustomerSnapshot | None:
        check_id("customer", customer)
        return await self.customers.get(customer, catalog, now_ms)

    @_measured("reserve")
    async def reserve(self, request: ReserveRequest) -> ReserveResponse:
        catalog, now = self.catalog, self.clock()
        version = catalog.version
        try:
            customer = await self._customer(request.customer, catalog, now)
        except StoreError:
            log.debug("reserve: store unavailable", extra=_context(request, version))
            return ReserveResponse(
                allowed=False, reason="store_unavailable", catalog_version=version
            )
        if customer is None:
            validate_reserve(catalog, request)  # bad input is an error even for no customer
            return ReserveResponse(
                allowed=False, reason="unknown_customer", catalog_version=version
            )
        decision = plan_reserve(catalog, customer, request, now)
        if isinstance(decision, Denial):
            return ReserveResponse(allowed=False, reason=decision.reason, catalog_version=version)
        attribution = {
            "customer": customer.id,
            "feature": request.feature,
            "request_id": request.idempotency_key,
            "tags": msgspec.json.encode(request.tags).decode(),
        }
        for field in ("team", "user", "agent", "session", "model"):
            value = getattr(request, field)
            if value is not None:
                attribution[field] = value
        reservation_id = new_reservation_id(customer.id, now)
        try:
            out = await self.store.reserve(
                customer.id,
                decision,
                reservation_id=reservation_id,
                idempotency_key=request.idempotency_key,
                now_ms=now,
                attribution=attribution,
            )
        except StoreError:
            log.debug("reserve: store unavailable", extra=_context(request, version))
            return ReserveResponse(
                allowed=False, reason="store_unavailable", catalog_version=version
            )
        if not out["allowed"]:
            return ReserveResponse(
                allowed=False, reason=out["reason"], scope=out.get("scope"), catalog_version=version
            )
        if out["reservation_id"] == reservation_id:  # not a replay of an earlier request
            self._holds[reservation_id] = (attribution, decision.expires_at_ms)
        return ReserveResponse(
            allowed=True,
            reason="ok",
            reservation_id=out["reservation_id"],
            held=_credits(out["held"]),
            remaining={kind: _credits(value) for kind, value in out["remaining"].items()},
            soft_limits_hit=list(out["soft_limits_hit"] or []),
            catalog_version=version,
        )

    @_measured("commit")
    async def commit(self, request: CommitRequest) -> CommitResponse:
        rid = _required_rid(request.reservation_id)
        customer_id = customer_of(rid)
        catalog, now = self.catalog, self.clock()
        hold = self._holds.get(rid)
        attribution = hold[0] if hold else await self.store.hold_attribution(customer_id, rid)
        customer = await self.customers.get(customer_id, catalog, now)
        if attribution is None or customer is None:
            raise NotFound("reservation_id", f"no reservation {rid!r}")
        femtos, units = price_usage(
            catalog, customer, attribution.get("model"), request.units, request.amount
        )
        feature = catalog.features.get(attribution["feature"])
        counts = feature.counts if feature is not None else ()
        whole, remainder = split_femtos(femtos)
        if whole > MAX_AMOUNT_NANOS:
            raise InvalidInput(
                "units" if request.amount is None else "amount",
                f"this call would cost {format_credits(whole)} credits; one call may cost at "
                f"most {format_credits(MAX_AMOUNT_NANOS)}",
            )
        out = await self.store.commit(
            customer_id,
            rid,
            whole_nanos=whole,
            remainder_femtos=remainder,
            units=units,
            quota_units=sum(units.get(kind, 0) for kind in counts),
            catalog_version=catalog.version,
            now_ms=now,
        )
        if out["result"] == "not_found":
            raise NotFound("reservation_id", f"no reservation {rid!r}")
        self._holds.pop(rid, None)
        if out["result"] == "already_released":
            return CommitResponse(result="already_released", catalog_version=catalog.version)
        return CommitResponse(
            result=out["result"],
            cost=_credits(out["cost"]),
            overage=_credits(out["overage"]),
            released=_credits(out["released"]),
            uncovered=_credits(out["uncovered"]),
            burned=[
                BurnedCredits(
                    grant_id=b["grant_id"],
                    credit_type=b["credit_type"],
                    amount=_credits(b["amount"]),
                )
                for b in (out["burned"] or [])
            ],
            catalog_version=catalog.version,
        )

    @_measured("release")
    async def release(self, request: ReleaseRequest) -> ReleaseResponse:
        rid = _required_rid(request.reservation_id)
        out = await self.store.release(customer_of(rid), rid, self.clock())
        if out["result"] == "not_found":
            raise NotFound("reservation_id", f"no reservation {rid!r}")
        self._holds.pop(rid, None)
        return ReleaseResponse(result=out["result"], released=_credits(out.get("released", 0)))

    @_measured("check")
    async def check(self, request: CheckRequest) -> CheckResponse:
        catalog, now = self.catalog, self.clock()
        version = catalog.version
        try:
            customer = await self._customer(request.customer, catalog, now)
        except StoreError:
            return CheckResponse(allowed=False, reason="store_unavailable", catalog_version=version)
        if customer is None:
            validate_check(request)
            return CheckResponse(allowed=False, reason="unknown_customer", catalog_version=version)
        decision = plan_check(catalog, customer, request)
        if decision.reason != "ok":
            return CheckResponse(allowed=False, reason=decision.reason, catalog_version=version)
        quota = decision.quota
        if quota is None:
            return CheckResponse(
                allowed=True, reason="ok", value=decision.value, catalog_version=version
            )
        field = f"q:{quota.feature}"
        try:
            used, held = await self.store.counters(
                customer.id,
                f"u:{period_ids(now).of(quota.period)}",
                [f"{field}|used", f"{field}|held"],
            )
        except StoreError:
            return CheckResponse(allowed=False, reason="store_unavailable", catalog_version=version)
        remaining = max(0, quota.limit - used - held)
        return CheckResponse(
            allowed=remaining > 0,
            reason="ok" if remaining > 0 else "quota_exceeded",
            remaining=remaining,
            catalog_version=version,
        )

    async def balance(self, customer_id: str) -> BalanceResponse:
        catalog, now = self.catalog, self.clock()
        customer = await self._customer(customer_id, catalog, now)
        if customer is None:
            raise NotFound("customer", f"no customer {customer_id!r}; create it with the admin API")
        periods = period_ids(now)
        buckets = []
        total = 0
        for member, amount in sorted((await self.store.hash_all(customer_id, "bucket")).items()):
            priority, expires_at_ms, _created, credit_type, grant_id = parse_burn_key(member)
            if expires_at_ms is not None and expires_at_ms <= now:
                continue
            total += int(amount)
            buckets.append(
                BucketState(
                    grant_id=grant_id,
                    credit_type=credit_type,
                    amount=_credits(amount),
                    priority=priority,
                    expires_at=_iso(expires_at_ms),
                )
            )
        (held,) = await self.store.counters(customer_id, "balance", ["held"])
        (overage,) = await self.store.counters(customer_id, f"u:{periods.month}", ["overage|used"])
        budgets = []
        for field, value in sorted((await self.store.hash_all(customer_id, "budgets")).items()):
            scope, period = field.rsplit("|", 1)
            limit_text, mode = value.split("|")
            if scope.startswith("session:"):
                key, prefix = f"s:{scope.removeprefix('session:')}", ""
            else:
                key, prefix = f"u:{periods.of(period)}", f"{scope}|"  # type: ignore[arg-type]
            used, in_flight = await self.store.counters(
                customer_id, key, [f"{prefix}used", f"{prefix}held"]
            )
            limit = int(limit_text)
            budgets.append(
                BudgetState(
                    scope=scope,
                    period=period,  # type: ignore[arg-type]
                    limit=_credits(limit),
                    mode=mode,  # type: ignore[arg-type]
                    used=_credits(used),
                    held=_credits(in_flight),
                    remaining=_credits(limit - used - in_flight),
                )
            )
        return BalanceResponse(
            customer=customer_id,
            plan=customer.plan,
            balance=_credits(total - held),
            held=_credits(held),
            buckets=buckets,
            budgets=budgets,
            overage_used=_credits(overage),
        )

    async def budgets(
        self,
        customer_id: str,
        *,
        team: str | None = None,
        user: str | None = None,
        agent: str | None = None,
        session: str | None = None,
    ) -> BudgetsResponse:
        """Budget state of every node on one subject path (all of the customer's when bare)."""
        subject = {"team": team, "user": user, "agent": agent, "session": session}
        for field, value in subject.items():
            if value is not None:
                check_id(field, value)
        state = await self.balance(customer_id)
        budgets = state.budgets
        if any(value is not None for value in subject.values()):
            scopes = set(subject_scopes(team, user, agent))
            if session is not None:
                scopes.add(f"session:{session}")
            budgets = [budget for budget in budgets if budget.scope in scopes]
        return BudgetsResponse(customer=customer_id, budgets=budgets)

    async def upsert_customer(
        self, customer_id: str, request: UpsertCustomerRequest
    ) -> CustomerResponse:
        catalog, now = self.catalog, self.clock()
        check_id("customer", customer_id)
        if request.plan not in catalog.plans:
            raise InvalidInput(
                "plan", f"unknown plan {request.plan!r}; use one of {', '.join(catalog.plans)}"
            )
        overrides = ""
        if request.overrides is not None:
            compile_overrides(request.overrides, catalog)
            overrides = msgspec.json.encode(request.overrides).decode()
        await self.store.register_customer(customer_id)  # before its first event: the ledger
        await self.store.upsert_customer(
            customer_id, plan=request.plan, overrides=overrides, now_ms=now
        )
        await self.customers.changed(customer_id)
        await self.customers.issue_plan_grants(customer_id, request.plan, catalog, now)
        return CustomerResponse(customer=customer_id, plan=request.plan, result="upserted")

    async def _existing(self, customer_id: str, catalog: Catalog, now: int) -> CustomerSnapshot:
        customer = await self._customer(customer_id, catalog, now)
        if customer is None:
            raise NotFound(
                "customer",
                f"no customer {customer_id!r}; create it first with the admin API",
            )
        return customer

    async def grant(self, customer_id: str, request: GrantRequest) -> GrantResponse:
        catalog, now = self.catalog, self.clock()
        check_idempotency_key("idempotency_key", request.idempotency_key)
        credit_type = catalog.credit_types.get(request.credit_type)
        if credit_type is None:
            known = ", ".join(catalog.credit_types)
            raise InvalidInput(
                "credit_type", f"unknown credit type {request.credit_type!r}; use one of {known}"
            )
        amount = parse_credits(request.amount, "amount")
        if amount == 0:
            raise InvalidInput("amount", "must be above 0")
        priority = credit_type.priority if request.priority is None else request.priority
        if not 0 <= priority <= MAX_PRIORITY:
            raise InvalidInput("priority", f"must be an integer from 0 to {MAX_PRIORITY}")
        expires_at_ms = None
        if request.expires_at is not None:
            expires_at_ms = _parse_time("expires_at", request.expires_at)
            if expires_at_ms <= now:
                raise InvalidInput(
                    "expires_at", "is in the past; a grant must expire in the future"
                )
        await self._existing(customer_id, catalog, now)
        result, grant_id = await self.store.grant(
            customer_id,
            idempotency_key=request.idempotency_key,
            credit_type=request.credit_type,
            amount_nanos=amount,
            priority=priority,
            expires_at_ms=expires_at_ms,
            now_ms=now,
            reason="admin",
        )
        return GrantResponse(
            result=result,  # type: ignore[arg-type]
            grant_id=grant_id,
            credit_type=request.credit_type,
            amount=_credits(amount),
            priority=priority,
            expires_at=_iso(expires_at_ms),
        )

    async def set_budget(self, customer_id: str, request: SetBudgetRequest) -> SetBudgetResponse:
        catalog, now = self.catalog, self.clock()
        nodes = [
            (kind, check_id(f"scope.{kind}", value))
            for kind in ("team", "user", "agent", "session")
            if (value := getattr(request.scope, kind)) is not None
        ]
        if len(nodes) > 1:
            raise InvalidInput(
                "scope", "name at most one of team, user, agent, session (none: the customer)"
            )
        scope = f"{nodes[0][0]}:{nodes[0][1]}" if nodes else "customer"
        if scope.startswith("session:") and request.period != "lifetime":
            raise InvalidInput("period", "a session budget lasts the session: use lifetime")
        limit = parse_credits(request.limit, "limit")
        await self._existing(customer_id, catalog, now)
        await self.store.set_budget(
            customer_id,
            scope=scope,
            period=request.period,
            limit_nanos=limit,
            mode=request.mode,
            now_ms=now,
        )
        return SetBudgetResponse(
            scope=scope, period=request.period, limit=_credits(limit), mode=request.mode
        )
