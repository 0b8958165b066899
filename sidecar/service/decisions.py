"""The hot path: check, reserve, commit, release.

Deciding what can be decided locally is the engine's job, moving money atomically is the
store's; this layer wires them together and, when Redis cannot answer, either answers
``store_unavailable`` or, for a feature that allows it, decides in fallback
(service/fallback.py).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import msgspec

from sidecar.catalog.model import Catalog, Fallback
from sidecar.engine.customer import CustomerSnapshot
from sidecar.engine.decide import (
    Denial,
    ParsedReserve,
    parse_reserve,
    plan_check,
    plan_reserve,
    validate_check,
)
from sidecar.engine.periods import period_ids
from sidecar.engine.settle import NO_CHARGE, Charge, plan_commit
from sidecar.engine.usage import Usage, parse_usage
from sidecar.errors import InvalidInput, NotFound, OutcomeUnknown, RequestError, StoreError
from sidecar.money import format_credits
from sidecar.reservations import customer_of, new_reservation_id
from sidecar.service.context import Context
from sidecar.service.fallback import LocalHold
from sidecar.service.overdraft import Pending
from sidecar.service.spool import SpooledCommit, SpooledRelease
from sidecar.store.memory import MEMORY_SCOPE
from sidecar.store.records import Attribution, GrowReply
from sidecar.wire import (
    BurnedCredits,
    CheckRequest,
    CheckResponse,
    CommitRequest,
    CommitResponse,
    ReleaseRequest,
    ReleaseResponse,
    ReserveRequest,
    ReserveResponse,
)

__all__ = ["Decisions"]

log = logging.getLogger(__name__)

Q = TypeVar("Q")
R = TypeVar("R", bound="Answer")
T = TypeVar("T")
Answer = CheckResponse | ReserveResponse | CommitResponse | ReleaseResponse
Operation = Callable[["Decisions", Q], Awaitable[R]]


def _measured(operation: str) -> Callable[[Operation[Q, R]], Operation[Q, R]]:
    """Time an operation and count its answer: by outcome (allowed, denied, settled, or the
    error code) and by reason or result code."""

    def wrap(method: Operation[Q, R]) -> Operation[Q, R]:
        @functools.wraps(method)
        async def measured(self: Decisions, request: Q) -> R:
            started = time.perf_counter_ns()
            try:
                with self.store.deadline():
                    response = await method(self, request)
            except RequestError as error:
                self.metrics.decided(operation, error.code, error.code, started)
                raise
            except Exception:
                self.metrics.decided(operation, "internal", "internal", started)
                raise
            self.metrics.decided(
                operation, *_answer(response), started, fallback=response.decided_by == "fallback"
            )
            return response

        return measured

    return wrap


def _answer(response: Answer) -> tuple[str, str]:
    """(outcome, reason) of a response: allowed or denied with its reason, or settled."""
    if isinstance(response, CheckResponse | ReserveResponse):
        return ("allowed" if response.allowed else "denied"), response.reason
    assert isinstance(response, CommitResponse | ReleaseResponse)
    return "settled", response.result


def _policy(catalog: Catalog, feature: str) -> Fallback | None:
    """How ``feature`` is decided while Redis cannot answer: None for ``deny``."""
    spec = catalog.features.get(feature)
    return None if spec is None else spec.fallback


def _context(request: ReserveRequest, version: str) -> dict[str, str]:
    """What a log line about a reserve carries: never the customer's data, the ids to find it."""
    return {"request_id": request.idempotency_key, "catalog_version": version}


def _required_rid(rid: str) -> str:
    # gRPC (proto3) cannot send "" apart from absent, and reports it missing; so does HTTP.
    if not rid:
        raise InvalidInput("reservation_id", "is required")
    return rid


def _attribution(request: ReserveRequest, customer: str) -> Attribution:
    return Attribution(
        customer=customer,
        feature=request.feature,
        request_id=request.idempotency_key,
        tags=msgspec.json.encode(request.tags).decode(),
        team=request.team,
        user=request.user,
        agent=request.agent,
        session=request.session,
        model=request.model,
    )


class Decisions(Context):
    """check, reserve, commit, release: every answer counted and timed."""

    @_measured("reserve")
    async def reserve(self, request: ReserveRequest) -> ReserveResponse:
        return await self._reserve(request, growable=False)

    @_measured("reserve")
    async def reserve_growable(self, request: ReserveRequest) -> ReserveResponse:
        """A reserve whose hold ``grow`` may make larger (the proxy's streams)."""
        return await self._reserve(request, growable=True)

    async def _reserve(self, request: ReserveRequest, *, growable: bool) -> ReserveResponse:
        catalog, now = self.catalog, self.clock()
        version = catalog.version
        parsed = parse_reserve(catalog, request)  # bad input is an error even for no customer
        try:
            customer = await self.customer(request.customer, catalog, now)
        except StoreError:
            return await self._reserve_in_fallback(parsed, catalog, now, None)
        if customer is None:
            return ReserveResponse(
                allowed=False, reason="unknown_customer", catalog_version=version
            )
        decision = plan_reserve(catalog, customer, parsed, now)
        if isinstance(decision, Denial):
            return ReserveResponse(allowed=False, reason=decision.reason, catalog_version=version)
        if self.store.memory_full:  # room is kept for the commits of the calls in flight
            return ReserveResponse(
                allowed=False, reason="store_unavailable", scope=MEMORY_SCOPE,
                catalog_version=version,
            )  # fmt: skip
        attribution = _attribution(request, customer.id)
        reservation_id = new_reservation_id(customer.id, now)
        key = request.idempotency_key
        try:
            await self.unsettled.settle(customer.id, key)
            out = await self.store.reserve(
                customer.id,
                decision,
                reservation_id=reservation_id,
                idempotency_key=key,
                now_ms=now,
                attribution=attribution,
                grow=growable,
            )
        except StoreError as error:
            if error.unknown:  # it may have placed a hold: voided once Redis answers
                self.unsettled.void_later(customer.id, key, reservation_id)
            return await self._reserve_in_fallback(parsed, catalog, now, customer)
        if not out.allowed:
            return ReserveResponse(
                allowed=False, reason=out.reason, scope=out.scope, catalog_version=version
            )
        if out.reservation_id == reservation_id:  # not a replay of an earlier request
            self.holds[reservation_id] = LocalHold(attribution, decision.expires_at_ms, out.held)
        return ReserveResponse(
            allowed=True,
            reason="ok",
            reservation_id=out.reservation_id,
            held=format_credits(out.held),
            remaining={kind: format_credits(value) for kind, value in out.remaining.items()},
            soft_limits_hit=out.soft_limits_hit,
            catalog_version=version,
        )

    async def _reserve_in_fallback(
        self,
        parsed: ParsedReserve,
        catalog: Catalog,
        now: int,
        customer: CustomerSnapshot | None,
    ) -> ReserveResponse:
        """Redis could not answer: ``store_unavailable``, or decided here if the feature
        allows it and this sidecar has read the customer."""
        request, version = parsed.request, catalog.version
        log.debug("reserve: store unavailable", extra=_context(request, version))
        policy = _policy(catalog, request.feature)
        if policy is not None and customer is None:
            customer = self.customers.last_known(request.customer, catalog)
        if policy is None or customer is None:
            return ReserveResponse(
                allowed=False, reason="store_unavailable", catalog_version=version
            )
        decision = plan_reserve(catalog, customer, parsed, now)
        if isinstance(decision, Denial):
            return ReserveResponse(
                allowed=False, reason=decision.reason, catalog_version=version,
                decided_by="fallback",
            )  # fmt: skip
        return await self.fallback.reserve(
            policy,
            decision,
            attribution=_attribution(request, customer.id),
            reservation_id=new_reservation_id(customer.id, now),
            idempotency_key=request.idempotency_key,
            now_ms=now,
            catalog_version=version,
        )

    async def grow(self, rid: str, step: int, units: dict[str, int]) -> GrowReply:
        """Hold what ``units`` more cost, on the hold ``rid`` placed here, if every cap allows
        it; step ``step`` (1, 2, ...) applies once. Not held, or Redis unable: ``not_held``."""
        hold = self.holds.get(rid)
        if hold is None:
            return GrowReply(result="not_held")
        catalog, now = self.catalog, self.clock()
        usage = parse_usage(catalog, units, None)
        try:
            charge = await self._charge(catalog, hold.attribution, usage, now)
            delta = charge.bound_nanos
            reply = await self.store.grow(
                hold.attribution.customer, rid, step=step, delta_nanos=delta,
                units=charge.quota_units, now_ms=now,
            )  # fmt: skip
        except StoreError:
            return GrowReply(result="not_held")
        if reply.result == "grown":
            self.holds[rid] = msgspec.structs.replace(hold, held_nanos=reply.held)
        return reply

    @_measured("commit")
    async def commit(self, request: CommitRequest) -> CommitResponse:
        rid = _required_rid(request.reservation_id)
        customer_id = customer_of(rid)
        catalog, now = self.catalog, self.clock()
        version = catalog.version
        usage = parse_usage(catalog, request.units, request.amount)
        call = self.fallback.knows(rid)
        if call is not None:  # settled here, after what is spooled about it
            charge = await self._charge(
                catalog, call.attribution, usage, now, estimated=request.estimated
            )
            return await self.fallback.commit(
                rid, call, charge, catalog_version=version, now_ms=now
            )
        rid = self.fallback.settled_as(rid)
        hold = self.holds.get(rid)
        attribution = (
            hold.attribution if hold else await self.store.hold_attribution(customer_id, rid)
        )
        # Resolved, or never placed: the store answers from its record.
        charge = NO_CHARGE if attribution is None else await self._charge(
            catalog, attribution, usage, now, estimated=request.estimated
        )  # fmt: skip
        try:
            out = await self.store.commit(
                customer_id, rid, charge=charge, catalog_version=version, now_ms=now
            )
        except StoreError as error:

            async def here(call: Pending) -> CommitResponse:
                return await self.fallback.commit(
                    rid, call, charge, catalog_version=version, now_ms=now
                )

            entry = SpooledCommit(
                customer=customer_id, reservation_id=rid, now_ms=now, charge=charge,
                catalog_version=version,
            )  # fmt: skip
            return await self._unanswered("commit", error, rid, here, entry)
        if out.result == "not_found":
            raise NotFound("reservation_id", f"no reservation {rid!r}")
        self.holds.pop(rid, None)
        if out.result == "already_released":
            return CommitResponse(result="already_released", catalog_version=version)
        return CommitResponse(
            result=out.result,
            cost=format_credits(out.cost),
            overrun=format_credits(out.overrun),
            overage=format_credits(out.overrun),  # deprecated name, until 0.3
            released=format_credits(out.released),
            uncovered=format_credits(out.uncovered),
            burned=[
                BurnedCredits(
                    grant_id=b.grant_id, credit_type=b.credit_type, amount=format_credits(b.amount)
                )
                for b in out.burned
            ],
            catalog_version=version,
        )

    async def _charge(
        self,
        catalog: Catalog,
        attribution: Attribution,
        usage: Usage,
        now: int,
        *,
        estimated: bool = False,
    ) -> Charge:
        """What the usage costs the hold's customer (as last read, while Redis is down)."""
        customer_id = attribution.customer
        try:
            customer = await self.customers.get(customer_id, catalog, now)
        except StoreError:
            customer = self.customers.last_known(customer_id, catalog)
            if customer is None:
                raise
        if customer is None:
            raise NotFound("reservation_id", f"no customer {customer_id!r} for this reservation")
        charge = plan_commit(
            catalog, customer, model=attribution.model, feature=attribution.feature, usage=usage
        )
        return msgspec.structs.replace(charge, estimated=True) if estimated else charge

    @_measured("release")
    async def release(self, request: ReleaseRequest) -> ReleaseResponse:
        rid = _required_rid(request.reservation_id)
        customer_id, now = customer_of(rid), self.clock()
        call = self.fallback.knows(rid)
        if call is not None:
            return await self.fallback.release(rid, call, now_ms=now)
        rid = self.fallback.settled_as(rid)
        try:
            out = await self.store.release(customer_id, rid, now)
        except StoreError as error:

            async def here(call: Pending) -> ReleaseResponse:
                return await self.fallback.release(rid, call, now_ms=now)

            entry = SpooledRelease(customer=customer_id, reservation_id=rid, now_ms=now)
            return await self._unanswered("release", error, rid, here, entry)
        if out.result == "not_found":
            raise NotFound("reservation_id", f"no reservation {rid!r}")
        self.holds.pop(rid, None)
        return ReleaseResponse(result=out.result, released=format_credits(out.released))

    async def _unanswered(
        self,
        operation: str,
        error: StoreError,
        rid: str,
        here: Callable[[Pending], Awaitable[T]],
        entry: SpooledCommit | SpooledRelease,
    ) -> T:
        """Redis did not answer a commit or release. A hold placed here for a feature that
        allows it is settled ``here``, in fallback; otherwise a call that may have applied is
        spooled (replayed until Redis answers: the first answer stands) and the caller told
        the outcome is unknown, and one that was never sent is ``store_unavailable``."""
        hold = self.holds.get(rid)
        if (
            hold is not None
            and _policy(self.catalog, hold.attribution.feature) is not None
            and self.fallback.spool.has_room()
        ):
            self.holds.pop(rid, None)
            return await here(self.fallback.adopt(rid, hold))
        if not error.unknown:
            raise error
        await self.fallback.unknown(entry)
        raise OutcomeUnknown.of(operation) from error

    @_measured("check")
    async def check(self, request: CheckRequest) -> CheckResponse:
        catalog, now = self.catalog, self.clock()
        version = catalog.version
        validate_check(request)
        try:
            customer = await self.customer(request.customer, catalog, now)
        except StoreError:
            return self._check_in_fallback(request, catalog, None)
        if customer is None:
            return CheckResponse(allowed=False, reason="unknown_customer", catalog_version=version)
        decision = plan_check(catalog, customer, request)
        if decision.reason != "ok":
            return CheckResponse(allowed=False, reason=decision.reason, catalog_version=version)
        quota = decision.quota
        if quota is None:
            return CheckResponse(
                allowed=True, reason="ok", value=decision.value, catalog_version=version
            )
        try:
            in_use = await self.store.quota_counters(
                customer.id, period_ids(now).of(quota.period), quota.feature
            )
        except StoreError:
            return self._check_in_fallback(request, catalog, customer)
        remaining = max(0, quota.limit - in_use)
        return CheckResponse(
            allowed=remaining > 0,
            reason="ok" if remaining > 0 else "quota_exceeded",
            remaining=remaining,
            catalog_version=version,
        )

    def _check_in_fallback(
        self, request: CheckRequest, catalog: Catalog, customer: CustomerSnapshot | None
    ) -> CheckResponse:
        """Redis could not answer: ``store_unavailable``, or the entitlement as the catalog
        and the customer last read say (a quota's use unknown: no ``remaining``)."""
        version = catalog.version
        policy = _policy(catalog, request.feature)
        if policy is not None and customer is None:
            customer = self.customers.last_known(request.customer, catalog)
        if policy is None or customer is None:
            return CheckResponse(allowed=False, reason="store_unavailable", catalog_version=version)
        decision = plan_check(catalog, customer, request)
        return CheckResponse(
            allowed=decision.reason == "ok", reason=decision.reason, value=decision.value,
            catalog_version=version, decided_by="fallback",
        )  # fmt: skip
