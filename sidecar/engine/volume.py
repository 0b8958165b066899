"""Volume pricing: a month's units of one model and unit kind, all at the price of the tier
their total reached (catalog ``models.<m>.volume``), settled as a rebate when the month closes
(ledger/close.py) and shown on the invoice preview. Pure."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from sidecar.catalog.model import Catalog

__all__ = ["PriceOf", "volume_rebates"]

PriceOf = Callable[[str, str], int | None]
"""Femto-credits per unit of (model, unit kind) as one customer was charged."""


def volume_rebates(
    catalog: Catalog, units: Mapping[tuple[str, str], int], price_of: PriceOf
) -> dict[tuple[str, str], int]:
    """Femto-credits to return per (model, unit kind) for a month's ``units``: each unit at
    the price it was charged (``price_of``, never above the list price) less the price of the
    volume tier the month's total reached. Pure."""
    out = {}
    for (model, kind), quantity in units.items():
        tiers = catalog.volume_femtos.get(model, {}).get(kind, ())
        reached = [price for start, price in tiers if quantity >= start]
        listed = catalog.prices_femtos.get(model, {}).get(kind)
        if not reached or listed is None:
            continue
        charged = min(price_of(model, kind) or listed, listed)
        if charged > reached[-1]:
            out[(model, kind)] = quantity * (charged - reached[-1])
    return out
