"""Local decisions on the example catalog: denials, bad input, and the work order for the store.

Expected amounts are computed here with Decimal from the prices written in
policies/example.yaml, never read back from the engine.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal
from pathlib import Path
from typing import Any

import pytest

from sidecar.catalog import load_catalog
from sidecar.catalog.compile import compile_overrides
from sidecar.catalog.spec import ContractSpec
from sidecar.engine import (
    CheckDecision,
    CustomerSnapshot,
    Denial,
    Quota,
    RateCheck,
    ReservePlan,
    parse_reserve,
    plan_check,
    plan_reserve,
)
from sidecar.engine.decide import validate_check
from sidecar.errors import InvalidInput
from sidecar.wire import CheckRequest, Reason, ReserveRequest

EXAMPLE = Path(__file__).resolve().parents[2] / "policies" / "example.yaml"
CATALOG = load_catalog(EXAMPLE)
NOW_MS = 1_795_089_600_000  # 2026-11-19T12:00:00Z
NANO = Decimal("0.000000001")

PRO = CustomerSnapshot(id="acme", plan="pro")
FREE = CustomerSnapshot(id="tiny", plan="free")
ENTERPRISE = CustomerSnapshot(id="initech", plan="enterprise")
GLOBEX = CustomerSnapshot(id="globex", plan="enterprise")  # has a contract in the catalog


def reserve_request(**changes: Any) -> ReserveRequest:
    fields: dict[str, Any] = {
        "customer": "acme",
        "feature": "chat",
        "idempotency_key": "req-1",
        "team": "eng",
        "user": "u-1",
        "agent": "a",
        "session": "run-1",
        "model": "gpt-4o-mini",
        "units": {"input_tokens": 1200, "output_tokens": 800},
    }
    return ReserveRequest(**(fields | changes))


def decide(customer: CustomerSnapshot, request: ReserveRequest) -> Denial | ReservePlan:
    """Parse the request's form, then decide: the order the service calls them in."""
    return plan_reserve(CATALOG, customer, parse_reserve(CATALOG, request), NOW_MS)


def reserve(customer: CustomerSnapshot, **changes: Any) -> ReservePlan:
    plan = decide(customer, reserve_request(**changes))
    assert isinstance(plan, ReservePlan), plan
    return plan


def hold_of(**cost_by_units: tuple[int, str]) -> int:
    """Nano-credits held for units at prices per million: the exact cost, rounded up."""
    costs = (Decimal(n) * Decimal(price) / 10**6 for n, price in cost_by_units.values())
    credits = sum(costs, Decimal(0))
    return int(credits.quantize(NANO, rounding=ROUND_CEILING) / NANO)


DENIALS = [
    ("unknown feature", PRO, {"feature": "video"}, "unknown_feature"),
    ("unknown feature, no plan either", FREE, {"feature": "video"}, "unknown_feature"),
    ("sso is not in pro", PRO, {"feature": "sso"}, "feature_not_entitled"),
    ("support agent not in free", FREE, {"feature": "support_agent"}, "feature_not_entitled"),
    (
        "plan gone from the catalog",
        CustomerSnapshot(id="old", plan="legacy"),
        {},
        "feature_not_entitled",
    ),
    ("claude-sonnet-4 not in pro", PRO, {"model": "claude-sonnet-4"}, "model_not_allowed"),
    ("gpt-4o not in free", FREE, {"model": "gpt-4o"}, "model_not_allowed"),
    ("model unknown to the catalog", PRO, {"model": "gpt-9"}, "model_not_allowed"),
]


@pytest.mark.parametrize(
    ("case", "customer", "changes", "reason"), DENIALS, ids=[row[0] for row in DENIALS]
)
def test_local_denials(
    case: str, customer: CustomerSnapshot, changes: dict[str, Any], reason: Reason
) -> None:
    request = reserve_request(**changes)
    assert decide(customer, request) == Denial(reason), case
    check = CheckRequest(
        customer=customer.id,
        feature=changes.get("feature", "chat"),
        model=changes.get("model", "gpt-4o-mini"),
    )
    assert plan_check(CATALOG, customer, check).reason == reason, case


INVALID = [
    ("unknown unit kind", {"units": {"image_tokens": 5}}, "units.image_tokens"),
    ("negative units", {"units": {"input_tokens": -1}}, "units.input_tokens"),
    ("too many units", {"units": {"input_tokens": 10**12 + 1}}, "units.input_tokens"),
    ("tokens without a model", {"model": None}, "model"),
    (
        "unit kind the model has no price for",
        {"model": "llama-3.1-8b", "units": {"cached_input_tokens": 10}},
        "units.cached_input_tokens",
    ),
    ("ttl of zero", {"ttl_ms": 0}, "ttl_ms"),
    ("ttl above a day", {"ttl_ms": 86_400_001}, "ttl_ms"),
    ("team id with a separator", {"team": "eng|ops"}, "team"),
    ("user id with a space", {"user": "u 1"}, "user"),
    ("empty agent id", {"agent": ""}, "agent"),
    ("session id with a brace", {"session": "{run}"}, "session"),
    ("idempotency key with a space", {"idempotency_key": "req 1"}, "idempotency_key"),
    ("config feature reserved", {"feature": "max_context_tokens"}, "feature"),
    ("too many tags", {"tags": {f"t{i}": "x" for i in range(17)}}, "tags"),
    ("over-long amount", {"amount": "0.0000000001"}, "amount"),
]


@pytest.mark.parametrize(("case", "changes", "field"), INVALID, ids=[row[0] for row in INVALID])
def test_invalid_input_names_the_field(case: str, changes: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        decide(PRO, reserve_request(**changes))
    assert caught.value.field == field, case


def test_invalid_ids_in_check() -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_check(CheckRequest(customer="acme", feature="chat", team="a b"))
    assert caught.value.field == "team"


def test_reserve_plan_for_pro() -> None:
    plan = reserve(PRO, ttl_ms=30_000)
    assert plan == ReservePlan(
        # gpt-4o-mini: input 0.15, output 0.60 credits per million tokens.
        hold_nanos=hold_of(input_tokens=(1200, "0.15"), output_tokens=(800, "0.60")),
        scopes=("customer", "team:eng", "user:u-1", "agent:a"),
        session="run-1",
        session_budget_nanos=5 * 10**9,
        quota=Quota(feature="chat", units=2000, limit=20_000_000, period="month"),
        rate_limits=(
            RateCheck(scope="customer", requests_per_minute=600, tokens_per_minute=2_000_000),
            RateCheck(scope="user:u-1", requests_per_minute=120, tokens_per_minute=None),
        ),
        tokens=2000,
        credit_types=plan.credit_types,  # unordered: checked as a set below
        overage_cap_nanos=0,
        expires_at_ms=NOW_MS + 30_000,
        alert_budgets="p50,p80,p100",  # the plan's alert defaults, kept on the hold
        alert_balance="a5000000000",
    )
    assert plan.hold_nanos == 660_000  # 0.00018 + 0.00048 credits
    assert set(plan.credit_types) == {"promo", "included", "paid"}


def test_frontier_credits_pay_only_for_frontier_models() -> None:
    assert "frontier" not in reserve(PRO, model="gpt-4o-mini").credit_types
    assert set(reserve(PRO, model="gpt-4o").credit_types) == {
        "promo",
        "included",
        "paid",
        "frontier",
    }


def test_scopes_and_rate_limits_follow_the_subject_path() -> None:
    plan = reserve(PRO, team=None, user=None, agent=None)
    assert plan.scopes == ("customer",)
    assert [limit.scope for limit in plan.rate_limits] == ["customer"]
    # free limits users only: with no user named, there is no rate limit to check.
    assert reserve(FREE, user=None).rate_limits == ()
    assert [r.scope for r in reserve(FREE, team=None, agent=None).rate_limits] == ["user:u-1"]


def test_quota_counts_only_the_features_unit_kinds() -> None:
    plan = reserve(PRO, units={"input_tokens": 10, "cached_input_tokens": 5, "output_tokens": 0})
    assert plan.quota == Quota(feature="chat", units=15, limit=20_000_000, period="month")
    assert plan.tokens == 15
    # enterprise chat has no limit: no quota to check.
    assert reserve(ENTERPRISE).quota is None


def test_hold_rounds_sub_nano_costs_up() -> None:
    # 0.0000015 credits per million tokens: 1200 tokens cost 1.8 nano-credits exactly.
    overrides = compile_overrides(
        ContractSpec(prices_per_million={"gpt-4o-mini": {"input_tokens": "0.0000015"}}), CATALOG
    )
    customer = CustomerSnapshot(id="acme", plan="pro", overrides=overrides)
    plan = reserve(customer, units={"input_tokens": 1200})
    assert plan.hold_nanos == hold_of(input_tokens=(1200, "0.0000015")) == 2


@pytest.mark.parametrize(
    ("customer", "overrides", "output_price"),
    [
        (ENTERPRISE, None, "10.00"),  # catalog price
        (GLOBEX, None, "8.00"),  # the catalog's contract for globex
        (GLOBEX, {"gpt-4o": {"output_tokens": "7.00"}}, "7.00"),  # admin override wins
        (GLOBEX, {"gpt-4o": {"input_tokens": "2.00"}}, "8.00"),  # override of another kind
        (ENTERPRISE, {"gpt-4o": {"output_tokens": "9.50"}}, "9.50"),
    ],
)
def test_contract_and_override_prices(
    customer: CustomerSnapshot, overrides: dict[str, dict[str, str]] | None, output_price: str
) -> None:
    if overrides is not None:
        contract = compile_overrides(ContractSpec(prices_per_million=overrides), CATALOG)
        customer = CustomerSnapshot(id=customer.id, plan=customer.plan, overrides=contract)
    input_price = (overrides or {}).get("gpt-4o", {}).get("input_tokens", "2.50")
    plan = reserve(customer, model="gpt-4o", units={"input_tokens": 1000, "output_tokens": 1000})
    expected = hold_of(input_tokens=(1000, input_price), output_tokens=(1000, output_price))
    assert plan.hold_nanos == expected


def test_outcomes_are_priced_per_outcome_and_by_contract() -> None:
    request = {"feature": "support_agent", "model": None, "units": {"tickets_resolved": 3}}
    pro = reserve(PRO, **request)
    assert pro.hold_nanos == int(3 * Decimal("0.99") / NANO)
    assert pro.quota == Quota(feature="support_agent", units=3, limit=500, period="month")
    globex = reserve(GLOBEX, **request)
    assert globex.hold_nanos == int(3 * Decimal("0.79") / NANO)
    assert globex.quota == Quota(feature="support_agent", units=3, limit=5000, period="month")


def test_amount_prices_the_call_and_units_still_count() -> None:
    plan = reserve(PRO, amount="0.5")
    assert plan.hold_nanos == int(Decimal("0.5") / NANO)
    assert plan.quota is not None
    assert plan.quota.units == 2000


def test_check_reads_config_values_and_quotas() -> None:
    config = plan_check(CATALOG, PRO, CheckRequest(customer="acme", feature="max_context_tokens"))
    assert config == CheckDecision(reason="ok", value=128000, quota=None)
    chat = plan_check(CATALOG, PRO, CheckRequest(customer="acme", feature="chat"))
    assert chat == CheckDecision(
        reason="ok", quota=Quota(feature="chat", units=0, limit=20_000_000, period="month")
    )
    sso = plan_check(CATALOG, ENTERPRISE, CheckRequest(customer="initech", feature="sso"))
    assert sso == CheckDecision(reason="ok")
