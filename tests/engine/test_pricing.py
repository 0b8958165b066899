"""Exact money: wire parsing and formatting, pricing against a Decimal reference, the carry rule."""

from __future__ import annotations

import decimal
from contextlib import AbstractContextManager
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.catalog import load_catalog
from sidecar.catalog.compile import compile_overrides
from sidecar.catalog.spec import ContractSpec
from sidecar.engine import (
    CustomerSnapshot,
    carry,
    cost_femtos,
    hold_nanos,
    parse_usage,
    price_usage,
)
from sidecar.errors import InvalidInput
from sidecar.money import format_credits, parse_credits, parse_price

EXAMPLE = Path(__file__).resolve().parents[2] / "policies" / "example.yaml"
CATALOG = load_catalog(EXAMPLE)

NANO = Decimal(10) ** -9
FEMTOS_PER_CREDIT = 10**15
KINDS = ("input_tokens", "cached_input_tokens", "output_tokens")


@pytest.mark.parametrize(
    ("text", "nanos"),
    [
        ("0", 0),
        ("0.0", 0),
        ("0.000000001", 1),
        ("1", 10**9),
        ("12.5", 12_500_000_000),
        ("0.00084", 840_000),
        ("1000000000", 10**18),
        ("1000000000.000000000", 10**18),
    ],
)
def test_parse_credits(text: str, nanos: int) -> None:
    assert parse_credits(text, "amount") == nanos
    assert Decimal(format_credits(nanos)) == Decimal(text)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("0.0000000001", "10 fractional digits"),
        ("1000000000.000000001", "at most 1000000000.000000000"),
        ("-1", "non-negative decimal string"),
        ("-0.5", "non-negative decimal string"),
        ("01", "non-negative decimal string"),
        ("", "non-negative decimal string"),
        (" 1", "non-negative decimal string"),
        ("1 ", "non-negative decimal string"),
        ("1.", "non-negative decimal string"),
        (".5", "non-negative decimal string"),
        ("1e3", "non-negative decimal string"),
        ("1_000", "non-negative decimal string"),
        ("\u0661", "non-negative decimal string"),  # ARABIC-INDIC DIGIT ONE: int() takes it
    ],
)
def test_parse_credits_rejects(text: str, problem: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_credits(text, "amount")
    assert caught.value.field == "amount"
    assert problem in caught.value.message


def test_parse_credits_rejects_non_strings() -> None:
    with pytest.raises(InvalidInput):
        parse_credits(1, "amount")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("nanos", "text"),
    [
        (0, "0.000000000"),
        (1, "0.000000001"),
        (840_000, "0.000840000"),
        (12_500_000_000, "12.500000000"),
        (10**18, "1000000000.000000000"),
        (-1, "-0.000000001"),
        (-(10**9) - 5, "-1.000000005"),
    ],
)
def test_format_credits(nanos: int, text: str) -> None:
    assert format_credits(nanos) == text


@given(st.integers(min_value=-(10**20), max_value=10**20))
def test_format_credits_is_exact(nanos: int) -> None:
    text = format_credits(nanos)
    assert Decimal(text) == Decimal(nanos) * NANO
    assert len(text.split(".")[1]) == 9
    if 0 <= nanos <= 10**18:
        assert parse_credits(text, "amount") == nanos


@pytest.mark.parametrize(
    ("text", "per_million", "femtos"),
    [
        ("0", True, 0),
        ("2.50", True, 2_500_000_000),
        ("0.000000001", True, 1),  # a nano-credit per million units is a femto per unit
        ("0.075", True, 75_000_000),
        ("0.0001", False, 100_000_000_000),
        ("0.000000000000001", False, 1),
        ("0.99", False, 990_000_000_000_000),
    ],
)
def test_parse_price(text: str, per_million: bool, femtos: int) -> None:
    assert parse_price(text, "price", per_million=per_million) == femtos
    scale = Decimal(FEMTOS_PER_CREDIT) / (10**6 if per_million else 1)
    assert Decimal(text) * scale == femtos


@pytest.mark.parametrize(
    ("text", "per_million"),
    [("0.0000000001", True), ("0.0000000000000001", False), ("-1", True), ("1.", False)],
)
def test_parse_price_rejects(text: str, per_million: bool) -> None:
    with pytest.raises(InvalidInput):
        parse_price(text, "price", per_million=per_million)


@st.composite
def per_million_prices(draw: st.DrawFn) -> str:
    """Credits per million units as a catalog writes them: at most 9 fractional digits."""
    whole = draw(st.integers(min_value=0, max_value=10_000))
    fraction = draw(st.text(alphabet="0123456789", max_size=9))
    return f"{whole}.{fraction}" if fraction else str(whole)


units_strategy = st.integers(min_value=0, max_value=10**12)


def exact() -> AbstractContextManager[decimal.Context]:
    """Enough digits that no reference computation below rounds (the default has 28)."""
    return decimal.localcontext(prec=100)


def reference_femtos(units: dict[str, int], prices: dict[str, str]) -> int:
    """Exact cost by Decimal arithmetic, in femto-credits."""
    with exact():
        credits = sum((Decimal(units[k]) * Decimal(prices[k]) / 10**6 for k in units), Decimal(0))
        femtos = credits * FEMTOS_PER_CREDIT
    assert femtos == femtos.to_integral_value()
    return int(femtos)


@given(
    st.dictionaries(st.sampled_from(KINDS), units_strategy, min_size=1),
    st.fixed_dictionaries({kind: per_million_prices() for kind in KINDS}),
)
def test_cost_femtos_matches_decimal(units: dict[str, int], prices: dict[str, str]) -> None:
    femtos = {k: parse_price(v, k, per_million=True) for k, v in prices.items()}
    assert cost_femtos(units, femtos) == reference_femtos(units, prices)


@given(
    st.fixed_dictionaries(dict.fromkeys(KINDS, units_strategy)),
    st.fixed_dictionaries({kind: per_million_prices() for kind in KINDS}),
)
def test_price_usage_matches_decimal(units: dict[str, int], prices: dict[str, str]) -> None:
    # The random prices reach the engine the way an admin sets them: as contract overrides.
    overrides = compile_overrides(ContractSpec(prices_per_million={"gpt-4o": prices}), CATALOG)
    customer = CustomerSnapshot(id="acme", plan="pro", overrides=overrides)
    usage = parse_usage(CATALOG, units, None)
    assert usage.units == {kind: count for kind, count in units.items() if count}
    assert price_usage(CATALOG, customer, "gpt-4o", usage) == reference_femtos(units, prices)


@given(st.integers(min_value=0, max_value=10**30))
def test_hold_rounds_up_to_the_nano(femtos: int) -> None:
    held = hold_nanos(femtos)
    with exact():
        expected = (Decimal(femtos) / FEMTOS_PER_CREDIT).quantize(NANO, rounding=ROUND_CEILING)
        assert Decimal(held) * NANO == expected
    assert held * 10**6 >= femtos  # the hold covers the exact cost
    assert (held - 1) * 10**6 < femtos or femtos == 0  # by less than one nano-credit


@given(
    st.lists(
        st.one_of(
            st.integers(min_value=0, max_value=10**6),  # sub-nano costs, the hard case
            st.integers(min_value=0, max_value=10**18),
        ),
        max_size=200,
    )
)
def test_carry_charges_the_exact_total_rounded_down(costs: list[int]) -> None:
    remainder, charged, total = 0, 0, 0
    for femtos in costs:
        nanos, remainder = carry(remainder, femtos)
        charged += nanos
        total += femtos
        assert 0 <= remainder < 10**6
        assert charged * 10**6 + remainder == total  # nothing made up, nothing lost
    with exact():
        expected = (Decimal(total) / FEMTOS_PER_CREDIT).quantize(NANO, rounding=ROUND_FLOOR)
        assert Decimal(charged) * NANO == expected


@pytest.mark.parametrize(
    "price",
    [
        "0.00000015",  # 150 nano-credits per token
        "0.0000000015",  # 1.5 nano-credits
        "0.0000000004",  # 0.4 nano-credits: below a nano per call
    ],
)
def test_a_million_one_token_calls_are_charged_exactly(price: str) -> None:
    calls = 1_000_000
    price_femtos = parse_price(price, "price", per_million=False)
    femtos = cost_femtos({"input_tokens": 1}, {"input_tokens": price_femtos})
    remainder, charged, first = 0, 0, []
    for call in range(calls):
        nanos, remainder = carry(remainder, femtos)
        charged += nanos
        if call < 10:
            first.append(nanos)
    expected = Decimal(price) * calls / NANO
    assert expected == expected.to_integral_value()
    assert charged == int(expected)
    assert remainder == 0
    # Per call, the charge is the exact cost's floor or ceiling, never zeroed or inflated.
    per_call = Decimal(price) / NANO
    floor, ceiling = (per_call.to_integral_value(rounding=r) for r in (ROUND_FLOOR, ROUND_CEILING))
    assert set(first) <= {floor, ceiling}
    assert Decimal(sum(first)) == per_call * 10  # ten calls: also exact, no drift
