"""Graduated tiers: a unit kind priced by where the customer's month stands. Pure.

The first ``up_to`` units of a kind in a calendar month at the first tier's price, the next
ones at the second's, and so on; the last tier prices the rest. The commit script
(``store/lua/commit.lua``) prices a call's units across the tiers from the month's counter
and advances the counter in the same step, so concurrent commits are priced as if one ran
after the other; ``graduated_femtos`` is its reference. A hold counts every unit at the
highest price from the tier the month's counter stands in (``script_ceilings``), which
covers the call wherever later commits move the counter; decided without the store (fallback),
at the highest price of all.
"""

from __future__ import annotations

from sidecar.catalog.model import Tiers
from sidecar.money import FEMTOS_PER_NANO

__all__ = ["MAX_TIERED_NANOS", "graduated_femtos", "script_ceilings", "script_tiers", "split"]

MAX_TIERED_NANOS = 2**53 - 1
"""The most one call's tiered units may cost at the highest tier price: the commit script's
numbers (doubles) are exact below 2^53, and every product it forms is at most this."""


def split(tiers: Tiers, start: int, units: int) -> list[tuple[int, int]]:
    """``units`` more units when the month's counter stands at ``start``: (index of the tier,
    units priced by it), tier by tier."""
    out, at, end = [], start, start + units
    for index, (up_to, _) in enumerate(tiers):
        top = end if up_to is None else min(end, up_to)
        if top > at:
            out.append((index, top - at))
            at = top
    return out


def graduated_femtos(tiers: Tiers, start: int, units: int) -> int:
    """Exact cost of ``units`` more units when the month's counter stands at ``start``."""
    return sum(tiers[index][1] * count for index, count in split(tiers, start, units))


def script_tiers(tiers: Tiers) -> list[list[int]]:
    """The tiers as the commit script reads them: [up to (-1: the rest), whole nano-credits
    per unit, femto-credits per unit beyond them]."""
    return [
        [-1 if up_to is None else up_to, *divmod(price, FEMTOS_PER_NANO)] for up_to, price in tiers
    ]


def script_ceilings(tiers: Tiers) -> list[list[int]]:
    """``script_tiers`` with each tier's price replaced by the highest price from it on: what
    a unit may cost at commit when the counter stands in that tier now (it only grows)."""
    ceilings, highest = [], 0
    for up_to, price in reversed(tiers):
        highest = max(highest, price)
        ceilings.append((up_to, highest))
    return script_tiers(tuple(reversed(ceilings)))
