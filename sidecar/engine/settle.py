"""What a commit charges: the exact cost of the actual usage, split for the store. Pure."""

from __future__ import annotations

import msgspec

from sidecar.catalog.model import Catalog
from sidecar.engine.customer import CustomerSnapshot
from sidecar.engine.pricing import split_femtos
from sidecar.engine.usage import Usage, price_usage
from sidecar.errors import InvalidInput
from sidecar.money import MAX_AMOUNT_NANOS, format_credits

__all__ = ["NO_CHARGE", "Charge", "plan_commit"]


class Charge(msgspec.Struct, frozen=True, kw_only=True):
    whole_nanos: int
    remainder_femtos: int
    """The sub-nano rest of the exact cost; the store's carry turns it into whole nanos."""
    units: dict[str, int]
    quota_units: int
    """Units the feature's quota counts (its ``counts`` kinds)."""
    estimated: bool = False
    """The units were counted from what was delivered, not measured: the event says so."""


NO_CHARGE = Charge(whole_nanos=0, remainder_femtos=0, units={}, quota_units=0)
"""What a commit of a hold no longer in flight is sent: its first answer is returned as it was,
and nothing is charged."""


def plan_commit(
    catalog: Catalog, customer: CustomerSnapshot, *, model: str | None, feature: str, usage: Usage
) -> Charge:
    """Price the actual usage of a call placed for ``feature`` on ``model``; raise InvalidInput
    when one call would cost more than any call may."""
    whole, remainder = split_femtos(price_usage(catalog, customer, model, usage))
    if whole > MAX_AMOUNT_NANOS:
        raise InvalidInput(
            "units" if usage.amount_nanos is None else "amount",
            f"this call would cost {format_credits(whole)} credits; one call may cost at "
            f"most {format_credits(MAX_AMOUNT_NANOS)}",
        )
    spec = catalog.features.get(feature)
    counts = spec.counts if spec is not None else ()
    return Charge(
        whole_nanos=whole,
        remainder_femtos=remainder,
        units=usage.units,
        quota_units=sum(usage.units.get(kind, 0) for kind in counts),
    )
