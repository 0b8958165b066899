"""What a call consumed or may consume, parsed once, and its exact price. Pure."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from sidecar.catalog.model import MODEL_UNIT_KINDS, Catalog
from sidecar.engine.customer import CustomerSnapshot, outcome_price_of, prices_of
from sidecar.engine.pricing import cost_femtos
from sidecar.errors import InvalidInput
from sidecar.money import FEMTOS_PER_NANO, parse_credits

__all__ = ["MAX_UNITS", "Usage", "parse_usage", "price_usage"]

MAX_UNITS = 10**12


class Usage(msgspec.Struct, frozen=True, kw_only=True):
    units: dict[str, int]
    """Non-zero unit counts by kind, every kind known to the catalog."""
    amount_nanos: int | None
    """Credits given by the caller (features priced outside the catalog); replaces units for
    pricing, and units then only count toward quotas."""


def parse_usage(catalog: Catalog, units: Mapping[str, int] | None, amount: str | None) -> Usage:
    """The form of a call's ``units`` and ``amount``, checked; raise InvalidInput naming the
    field."""
    counted: dict[str, int] = {}
    known = (*MODEL_UNIT_KINDS, *catalog.outcome_prices_femtos)
    for kind, count in (units or {}).items():
        if kind not in known:
            raise InvalidInput(f"units.{kind}", f"unknown unit kind; use one of {', '.join(known)}")
        if not 0 <= count <= MAX_UNITS:
            raise InvalidInput(f"units.{kind}", f"must be an integer >= 0 and <= {MAX_UNITS}")
        if count:
            counted[kind] = count
    amount_nanos = None if amount is None else parse_credits(amount, "amount")
    return Usage(units=counted, amount_nanos=amount_nanos)


def price_usage(
    catalog: Catalog, customer: CustomerSnapshot, model: str | None, usage: Usage
) -> int:
    """Exact cost of ``usage`` in femto-credits at the customer's prices."""
    if usage.amount_nanos is not None:
        return usage.amount_nanos * FEMTOS_PER_NANO
    model_prices = prices_of(catalog, customer, model) if model is not None else {}
    prices: dict[str, int] = {}
    for kind in usage.units:
        if kind in MODEL_UNIT_KINDS:
            if model is None:
                raise InvalidInput("model", f"is required when units include {kind}")
            if kind not in model_prices:
                raise InvalidInput(
                    f"units.{kind}", f"model {model} has no price for {kind}; remove it"
                )
            prices[kind] = model_prices[kind]
        else:
            price = outcome_price_of(catalog, customer, kind)
            assert price is not None, "outcome kinds come from the catalog"
            prices[kind] = price
    return cost_femtos(usage.units, prices)
