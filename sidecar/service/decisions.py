"""The hot path: check, reserve, commit, release.

Deciding what can be decided locally is the engine's job, moving money atomically is the
store's; this layer wires them together and turns store trouble into ``store_unavailable``.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import msgspec

from sidecar.engine.decide import (
    Denial,
    parse_reserve,
    plan_check,
    plan_reserve,
    validate_check,
)
from sidecar.engine.periods import period_ids
from sidecar.engine.settle import NO_CHARGE, plan_commit
from sidecar.engine.usage import parse_usage
from sidecar.errors import InvalidInput, NotFound, OutcomeUnknown, RequestError, StoreError
from sidecar.money import format_credits
from sidecar.reservations import customer_of, new_reservation_id
from sidecar.service.context import Context
from sidecar.store.records import Attribution, CommitReply
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
R = TypeVar("R")
T = TypeVar("T")
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
            self.metrics.decided(operation, *_answer(response), started)
            return response

        return measured

    return wrap


def _answer(response: object) -> tuple[str, str]:
    """(outcome, reason) of a response: allowed or denied with its reason, or settled."""
    if isinstance(response, CheckResponse | ReserveResponse):
        return ("allowed" if response.allowed else "denied"), response.reason
    assert isinstance(response, CommitResponse | ReleaseResponse)
    return "settled", response.result


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
        catalog, now = self.catalog, self.clock()
        version = catalog.version
        parsed = parse_reserve(catalog, request)  # bad input is an error even for no customer
        try:
            customer = await self.customer(request.customer, catalog, now)
        except StoreError:
            log.debug("reserve: store unavailable", extra=_context(request, version))
            return ReserveResponse(
                allowed=False, reason="store_unavailable", catalog_version=version
            )
        if customer is None:
            return ReserveResponse(
                allowed=False, reason="unknown_customer", catalog_version=version
            )
        decision = plan_reserve(catalog, customer, parsed, now)
        if isinstance(decision, Denial):
            return ReserveResponse(allowed=False, reason=decision.reason, catalog_version=version)
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
            )
        except StoreError as error:
            if error.unknown:  # it may have placed a hold: voided once Redis answers
                self.unsettled.void_later(customer.id, key, reservation_id)
            log.debug("reserve: store unavailable", extra=_context(request, version))
            return ReserveResponse(
                allowed=False, reason="store_unavailable", catalog_version=version
            )
        if not out.allowed:
            return ReserveResponse(
                allowed=False, reason=out.reason, scope=out.scope, catalog_version=version
            )
        if out.reservation_id == reservation_id:  # not a replay of an earlier request
            self.holds[reservation_id] = (attribution, decision.expires_at_ms)
        return ReserveResponse(
            allowed=True,
            reason="ok",
            reservation_id=out.reservation_id,
            held=format_credits(out.held),
            remaining={kind: format_credits(value) for kind, value in out.remaining.items()},
            soft_limits_hit=out.soft_limits_hit,
            catalog_version=version,
        )

    @_measured("commit")
    async def commit(self, request: CommitRequest) -> CommitResponse:
        rid = _required_rid(request.reservation_id)
        customer_id = customer_of(rid)
        catalog, now = self.catalog, self.clock()
        usage = parse_usage(catalog, request.units, request.amount)
        hold = self.holds.get(rid)
        attribution = hold[0] if hold else await self.store.hold_attribution(customer_id, rid)
        if attribution is None:  # resolved, or never placed: the store answers from its record
            charge = NO_CHARGE
        else:
            customer = await self.customers.get(customer_id, catalog, now)
            if customer is None:
                raise NotFound("reservation_id", f"no reservation {rid!r}")
            charge = plan_commit(
                catalog, customer, model=attribution.model, feature=attribution.feature,
                usage=usage,
            )  # fmt: skip

        def again() -> Awaitable[CommitReply]:
            return self.store.commit(
                customer_id, rid, charge=charge, catalog_version=catalog.version, now_ms=now
            )

        out = await self._settled("commit", rid, again)
        if out.result == "not_found":
            raise NotFound("reservation_id", f"no reservation {rid!r}")
        self.holds.pop(rid, None)
        if out.result == "already_released":
            return CommitResponse(result="already_released", catalog_version=catalog.version)
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
            catalog_version=catalog.version,
        )

    @_measured("release")
    async def release(self, request: ReleaseRequest) -> ReleaseResponse:
        rid = _required_rid(request.reservation_id)
        customer_id, now = customer_of(rid), self.clock()
        out = await self._settled("release", rid, lambda: self.store.release(customer_id, rid, now))
        if out.result == "not_found":
            raise NotFound("reservation_id", f"no reservation {rid!r}")
        self.holds.pop(rid, None)
        return ReleaseResponse(result=out.result, released=format_credits(out.released))

    async def _settled(self, operation: str, rid: str, call: Callable[[], Awaitable[T]]) -> T:
        """Run a commit or release; if Redis never answered, it is sent again in the
        background until it does, and the caller is told the outcome is unknown."""
        try:
            return await call()
        except StoreError as error:
            if not error.unknown:
                raise
            self.unsettled.repeat_later(rid, call)
            raise OutcomeUnknown.of(operation) from error

    @_measured("check")
    async def check(self, request: CheckRequest) -> CheckResponse:
        catalog, now = self.catalog, self.clock()
        version = catalog.version
        validate_check(request)
        try:
            customer = await self.customer(request.customer, catalog, now)
        except StoreError:
            return CheckResponse(allowed=False, reason="store_unavailable", catalog_version=version)
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
            return CheckResponse(allowed=False, reason="store_unavailable", catalog_version=version)
        remaining = max(0, quota.limit - in_use)
        return CheckResponse(
            allowed=remaining > 0,
            reason="ok" if remaining > 0 else "quota_exceeded",
            remaining=remaining,
            catalog_version=version,
        )
