"""Commit pricing is pure: the actual usage, priced at the customer's prices, split into whole
nano-credits and the femto remainder the store carries. Expected values are worked by hand
from policies/example.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sidecar.catalog import load_catalog
from sidecar.catalog.compile import compile_overrides
from sidecar.catalog.spec import ContractSpec
from sidecar.engine import Charge, CustomerSnapshot, parse_usage, plan_commit
from sidecar.errors import InvalidInput

CATALOG = load_catalog(Path(__file__).resolve().parents[2] / "policies" / "example.yaml")
PRO = CustomerSnapshot(id="acme", plan="pro")
GLOBEX = CustomerSnapshot(id="globex", plan="enterprise")  # contract: tickets at 0.79
# A contract price finer than a nano-credit per token: 0.0000015 credits per million tokens.
FINE = CustomerSnapshot(
    id="fine",
    plan="pro",
    overrides=compile_overrides(
        ContractSpec(prices_per_million={"gpt-4o-mini": {"input_tokens": "0.0000015"}}), CATALOG
    ),
)

CASES: list[tuple[str, CustomerSnapshot, str | None, str, dict[str, Any], Charge]] = [
    # 1000 * 0.15/M + 500 * 0.60/M = 0.00015 + 0.0003 = 0.00045 credits = 450,000 nanos;
    # served at 1000 * 0.12/M + 500 * 0.48/M = 0.00036 credits = 3.6e11 femtos.
    ("tokens", PRO, "gpt-4o-mini", "chat",
     {"units": {"input_tokens": 1000, "output_tokens": 500}},
     Charge(whole_nanos=450_000, remainder_femtos=0,
            units={"input_tokens": 1000, "output_tokens": 500}, quota_units=1500,
            serve_femtos=360_000_000_000)),
    # 1,000,001 tokens at 1.5e-12 credits (1,500 femto-credits) each:
    # 1,500,001,500 femtos = 1,500 whole nanos and 1,500 femtos carried.
    ("below a nano", FINE, "gpt-4o-mini", "chat", {"units": {"input_tokens": 1_000_001}},
     Charge(whole_nanos=1_500, remainder_femtos=1_500, units={"input_tokens": 1_000_001},
            quota_units=1_000_001,
            serve_femtos=1_000_001 * 120_000_000)),  # a contract price leaves the cost
    # Zero counts are dropped; the call costs nothing and counts nothing.
    ("nothing used", PRO, "gpt-4o-mini", "chat", {"units": {"input_tokens": 0}},
     Charge(whole_nanos=0, remainder_femtos=0, units={}, quota_units=0)),
    # Outcomes at the contract's price: 2 * 0.79 credits.
    ("contract outcome", GLOBEX, None, "support_agent", {"units": {"tickets_resolved": 2}},
     Charge(whole_nanos=1_580_000_000, remainder_femtos=0, units={"tickets_resolved": 2},
            quota_units=2)),
    # An amount prices the call; the units still count toward the quota.
    ("amount", PRO, None, "support_agent",
     {"units": {"tickets_resolved": 3}, "amount": "0.000000007"},
     Charge(whole_nanos=7, remainder_femtos=0, units={"tickets_resolved": 3}, quota_units=3)),
    # Units a feature does not count are charged but not counted.
    ("uncounted kind", PRO, "gpt-4o-mini", "support_agent", {"units": {"input_tokens": 1000}},
     Charge(whole_nanos=150_000, remainder_femtos=0, units={"input_tokens": 1000},
            quota_units=0, serve_femtos=1000 * 120_000_000)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "customer", "model", "feature", "request_", "charge"), CASES, ids=[c[0] for c in CASES]
)
def test_plan_commit_prices_the_actual_usage(
    case: str,
    customer: CustomerSnapshot,
    model: str | None,
    feature: str,
    request_: dict[str, Any],
    charge: Charge,
) -> None:
    usage = parse_usage(CATALOG, request_.get("units"), request_.get("amount"))
    assert plan_commit(CATALOG, customer, model=model, feature=feature, usage=usage) == charge


INVALID = [
    ("unknown kind", None, {"units": {"image_tokens": 1}}, "units.image_tokens"),
    ("negative", "gpt-4o-mini", {"units": {"input_tokens": -1}}, "units.input_tokens"),
    ("tokens without a model", None, {"units": {"input_tokens": 1}}, "model"),
    (
        "no price",
        "llama-3.1-8b",
        {"units": {"cached_input_tokens": 1}},
        "units.cached_input_tokens",
    ),
    ("finer than a nano", None, {"amount": "0.0000000001"}, "amount"),
    ("above the most one call may cost", None, {"amount": "1000000001"}, "amount"),
]


@pytest.mark.parametrize(
    ("case", "model", "request_", "field"), INVALID, ids=[c[0] for c in INVALID]
)
def test_bad_commit_usage_names_the_field(
    case: str, model: str | None, request_: dict[str, Any], field: str
) -> None:
    def settle() -> Charge:
        usage = parse_usage(CATALOG, request_.get("units"), request_.get("amount"))
        return plan_commit(CATALOG, PRO, model=model, feature="chat", usage=usage)

    with pytest.raises(InvalidInput) as caught:
        settle()
    assert caught.value.field == field, case
