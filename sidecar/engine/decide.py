"""Local decisions and the work order for the store: pure, no I/O, explicit ``now_ms``.

``parse_reserve`` checks a request's form once, before any I/O, and hands the parsed values
on. ``plan_reserve`` answers what the cached catalog can answer alone (unknown feature,
feature not in plan, model not allowed) and otherwise returns a ``ReservePlan``: the hold and
every budget, quota, rate limit and credit type the store must check atomically.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import msgspec

from sidecar.catalog.model import TOKEN_UNIT_KINDS, Catalog, Period
from sidecar.engine.customer import CustomerSnapshot, limit_of
from sidecar.engine.pricing import hold_nanos
from sidecar.engine.settle import Tiered, split_tiered
from sidecar.engine.usage import Usage, parse_usage, price_usage
from sidecar.errors import InvalidInput
from sidecar.ids import check_id
from sidecar.money import MAX_AMOUNT_NANOS
from sidecar.wire import CheckRequest, Reason, ReserveRequest

__all__ = [
    "MAX_TTL_MS",
    "CheckDecision",
    "Denial",
    "ParsedReserve",
    "Quota",
    "RateCheck",
    "ReservePlan",
    "check_idempotency_key",
    "parse_reserve",
    "plan_check",
    "plan_reserve",
    "subject_scopes",
    "validate_check",
]

MAX_TTL_MS = 86_400_000
MAX_TAGS = 16
_KEY = re.compile(r"[!-~]{1,200}")


class Denial(msgspec.Struct, frozen=True):
    reason: Reason


class Quota(msgspec.Struct, frozen=True, kw_only=True):
    feature: str
    units: int
    limit: int
    period: Period


class RateCheck(msgspec.Struct, frozen=True, kw_only=True):
    scope: str
    requests_per_minute: int | None
    tokens_per_minute: int | None


class ReservePlan(msgspec.Struct, frozen=True, kw_only=True):
    hold_nanos: int
    scopes: tuple[str, ...]
    """Budget nodes of the subject path: ``customer``, ``team:eng``, ``user:u-17``, ..."""
    session: str | None
    session_budget_nanos: int | None
    """The plan's default session budget, used when the session has none of its own."""
    quota: Quota | None
    rate_limits: tuple[RateCheck, ...]
    tokens: int
    credit_types: tuple[str, ...]
    """Credit types that may pay for this call, in no particular order."""
    overage_cap_nanos: int
    expires_at_ms: int
    alert_budgets: str | None = None
    """The plan's default alert thresholds, kept on the hold for its commit (commit.lua)."""
    alert_balance: str | None = None
    tiered: tuple[Tiered, ...] = ()
    """Units priced by graduated tiers: the store holds them at the highest price from the
    tier the month's counter stands in (engine/tiers.py)."""
    untiered_nanos: int | None = None
    """With ``tiered``: the hold of the other units; ``hold_nanos`` is the worst case from
    anywhere in the month (what a hold decided without the store counts)."""


class ParsedReserve(msgspec.Struct, frozen=True, kw_only=True):
    request: ReserveRequest
    usage: Usage


class CheckDecision(msgspec.Struct, frozen=True, kw_only=True):
    reason: Reason
    value: int | str | None = None
    quota: Quota | None = None


def check_idempotency_key(field: str, key: str) -> str:
    if not isinstance(key, str) or _KEY.fullmatch(key) is None:
        raise InvalidInput(field, "must be 1 to 200 printable ASCII characters without spaces")
    return key


def _required_feature(feature: str) -> None:
    # gRPC (proto3) cannot send "" apart from absent, and reports it missing; so does HTTP.
    if not feature:
        raise InvalidInput("feature", "is required")


def _optional_id(field: str, value: str | None) -> None:
    if value is not None:
        check_id(field, value)


def subject_scopes(team: str | None, user: str | None, agent: str | None) -> tuple[str, ...]:
    """Budget nodes of a subject path, customer first; the session is kept apart."""
    nodes = [("team", team), ("user", user), ("agent", agent)]
    return ("customer", *(f"{kind}:{name}" for kind, name in nodes if name is not None))


def _entitlement(
    catalog: Catalog, customer: CustomerSnapshot, feature: str, model: str | None
) -> Reason:
    plan = catalog.plans.get(customer.plan)
    if feature not in catalog.features:
        return "unknown_feature"
    if plan is None or feature not in plan.features:
        return "feature_not_entitled"
    if model is not None and model not in plan.models:
        return "model_not_allowed"
    return "ok"


def _quota(
    catalog: Catalog, customer: CustomerSnapshot, feature: str, units: Mapping[str, int]
) -> Quota | None:
    spec = catalog.features[feature]
    if spec.type != "metered":
        return None
    limit = limit_of(catalog, customer, feature)
    if limit is None:
        return None
    period = catalog.plans[customer.plan].features[feature].period
    counted = sum(units.get(kind, 0) for kind in spec.counts)
    return Quota(feature=feature, units=counted, limit=limit, period=period)


def parse_reserve(catalog: Catalog, request: ReserveRequest) -> ParsedReserve:
    """Every check of a reserve request's form that needs no customer; raise InvalidInput."""
    _required_feature(request.feature)
    for field in ("team", "user", "agent", "session"):
        _optional_id(field, getattr(request, field))
    check_idempotency_key("idempotency_key", request.idempotency_key)
    if not 1 <= request.ttl_ms <= MAX_TTL_MS:
        raise InvalidInput("ttl_ms", f"must be an integer from 1 to {MAX_TTL_MS}")
    if len(request.tags) > MAX_TAGS:
        raise InvalidInput("tags", f"at most {MAX_TAGS} tags")
    for key, value in request.tags.items():
        if not 1 <= len(key) <= 64 or len(value) > 256:
            raise InvalidInput(f"tags.{key}", "keys are 1-64 characters, values at most 256")
    usage = parse_usage(catalog, request.units, request.amount)
    return ParsedReserve(request=request, usage=usage)


def validate_check(request: CheckRequest) -> None:
    _required_feature(request.feature)
    for field in ("team", "user", "agent", "session"):
        _optional_id(field, getattr(request, field))


def plan_reserve(
    catalog: Catalog, customer: CustomerSnapshot, parsed: ParsedReserve, now_ms: int
) -> Denial | ReservePlan:
    """Decide locally, or return what the store must check and hold; raise InvalidInput."""
    request, units = parsed.request, parsed.usage.units
    reason = _entitlement(catalog, customer, request.feature, request.model)
    if reason != "ok":
        return Denial(reason)
    if catalog.features[request.feature].type == "config":
        raise InvalidInput("feature", f"{request.feature} is a config feature; read it with check")
    femtos = price_usage(catalog, customer, request.model, parsed.usage)
    plan = catalog.plans[customer.plan]
    scopes = subject_scopes(request.team, request.user, request.agent)
    present = {"customer": "customer"} | {scope.split(":", 1)[0]: scope for scope in scopes[1:]}
    rate_limits = tuple(
        RateCheck(
            scope=present[limit.scope],
            requests_per_minute=limit.requests_per_minute,
            tokens_per_minute=limit.tokens_per_minute,
        )
        for limit in plan.rate_limits
        if limit.scope in present
    )
    credit_types = tuple(
        type_id
        for type_id, credit_type in catalog.credit_types.items()
        if credit_type.models is None or request.model in credit_type.models
    )
    if hold_nanos(femtos) > MAX_AMOUNT_NANOS:
        raise InvalidInput(
            "units" if request.amount is None else "amount",
            f"the worst case would cost more than {MAX_AMOUNT_NANOS // 10**9} credits, "
            "the most one call may hold",
        )
    tiered, rest = split_tiered(catalog, customer, request.model, parsed.usage)
    untiered = hold_nanos(price_usage(catalog, customer, request.model, rest)) if tiered else None
    return ReservePlan(
        tiered=tiered,
        untiered_nanos=untiered,
        hold_nanos=hold_nanos(femtos),
        scopes=scopes,
        session=request.session,
        session_budget_nanos=plan.session_budget_nanos,
        quota=_quota(catalog, customer, request.feature, units),
        rate_limits=rate_limits,
        tokens=sum(units.get(kind, 0) for kind in TOKEN_UNIT_KINDS),
        credit_types=credit_types,
        overage_cap_nanos=plan.overage_cap_nanos,
        expires_at_ms=now_ms + request.ttl_ms,
        alert_budgets=plan.alert_budgets,
        alert_balance=plan.alert_balance,
    )


def plan_check(
    catalog: Catalog, customer: CustomerSnapshot, request: CheckRequest
) -> CheckDecision:
    """Entitlement, config value and the quota to read; never moves anything. The request's
    form is checked first (``validate_check``)."""
    reason = _entitlement(catalog, customer, request.feature, request.model)
    if reason != "ok":
        return CheckDecision(reason=reason)
    entry = catalog.plans[customer.plan].features[request.feature]
    return CheckDecision(
        reason="ok", value=entry.value, quota=_quota(catalog, customer, request.feature, {})
    )
