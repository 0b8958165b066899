"""What a commit charges: the exact cost of the actual usage, split for the store. Pure."""

from __future__ import annotations

import msgspec

from sidecar.catalog.model import Catalog, Tiers
from sidecar.engine.customer import CustomerSnapshot, tiers_of
from sidecar.engine.pricing import hold_nanos, split_femtos
from sidecar.engine.tiers import MAX_TIERED_NANOS
from sidecar.engine.usage import Usage, price_usage
from sidecar.errors import InvalidInput
from sidecar.money import MAX_AMOUNT_NANOS, format_credits

__all__ = ["NO_CHARGE", "Charge", "Tiered", "plan_commit", "serve_femtos", "split_tiered"]


class Tiered(msgspec.Struct, frozen=True):
    """Units of a kind priced by graduated tiers, where the month's counter stands: the
    commit script prices them (engine/tiers.py)."""

    model: str
    kind: str
    units: int
    tiers: Tiers

    @property
    def worst_femtos(self) -> int:
        return self.units * max(price for _, price in self.tiers)


class Charge(msgspec.Struct, frozen=True, kw_only=True):
    whole_nanos: int
    remainder_femtos: int
    """The sub-nano rest of the exact cost; the store's carry turns it into whole nanos."""
    units: dict[str, int]
    quota_units: int
    """Units the feature's quota counts (its ``counts`` kinds)."""
    estimated: bool = False
    """The units were counted from what was delivered, not measured: the event says so."""
    tiered: tuple[Tiered, ...] = ()
    """Units whose price the store decides, on top of ``whole_nanos``."""
    serve_femtos: int = 0
    """What serving the call cost us (the catalog's ``costs``), exact: the event records it."""

    @property
    def tiered_nanos(self) -> int:
        """At most what the tiered units cost (at their highest price), rounded up."""
        return hold_nanos(sum(part.worst_femtos for part in self.tiered))

    @property
    def bound_nanos(self) -> int:
        """At most what this charge costs, in whole nano-credits: what a hold sized for it
        holds."""
        return self.whole_nanos + (1 if self.remainder_femtos else 0) + self.tiered_nanos


NO_CHARGE = Charge(whole_nanos=0, remainder_femtos=0, units={}, quota_units=0)
"""What a commit of a hold no longer in flight is sent: its first answer is returned as it was,
and nothing is charged."""


def split_tiered(
    catalog: Catalog, customer: CustomerSnapshot, model: str | None, usage: Usage
) -> tuple[tuple[Tiered, ...], Usage]:
    """The units of ``usage`` that graduated tiers price (the store prices them, where the
    month stands), and the rest; raise InvalidInput when the tiered ones could cost more than
    the store prices exactly."""
    tiers = (
        {}
        if model is None or usage.amount_nanos is not None
        else tiers_of(catalog, customer, model)
    )
    tiered = tuple(
        Tiered(model, kind, count, tiers[kind])
        for kind, count in sorted(usage.units.items())
        if kind in tiers and model is not None
    )
    if hold_nanos(sum(part.worst_femtos for part in tiered)) > MAX_TIERED_NANOS:
        raise InvalidInput(
            "units", f"one call may cost at most {format_credits(MAX_TIERED_NANOS)} credits "
            "in tiered units; send the usage in smaller calls",
        )  # fmt: skip
    rest = {kind: count for kind, count in usage.units.items() if kind not in tiers}
    return tiered, Usage(units=rest, amount_nanos=usage.amount_nanos)


def plan_commit(
    catalog: Catalog, customer: CustomerSnapshot, *, model: str | None, feature: str, usage: Usage
) -> Charge:
    """Price the actual usage of a call placed for ``feature`` on ``model`` (its tiered units
    are left to the store); raise InvalidInput when one call would cost more than any call
    may."""
    worst = split_femtos(price_usage(catalog, customer, model, usage))[0]
    if worst > MAX_AMOUNT_NANOS:
        raise InvalidInput(
            "units" if usage.amount_nanos is None else "amount",
            f"this call would cost {format_credits(worst)} credits; one call may cost at "
            f"most {format_credits(MAX_AMOUNT_NANOS)}",
        )
    tiered, flat = split_tiered(catalog, customer, model, usage)
    whole, remainder = split_femtos(price_usage(catalog, customer, model, flat))
    spec = catalog.features.get(feature)
    counts = spec.counts if spec is not None else ()
    return Charge(
        whole_nanos=whole,
        remainder_femtos=remainder,
        units=usage.units,
        quota_units=sum(usage.units.get(kind, 0) for kind in counts),
        tiered=tiered,
        serve_femtos=serve_femtos(catalog, model, usage.units),
    )


def serve_femtos(catalog: Catalog, model: str | None, units: dict[str, int]) -> int:
    """The cost of serve of ``units`` on ``model``, in femto-credits: the catalog's cost per
    unit kind times the units (kinds without a cost cost nothing)."""
    costs = catalog.costs_femtos.get(model or "", {})
    return sum(count * costs.get(kind, 0) for kind, count in units.items())
