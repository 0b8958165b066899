"""Exact pricing in femto-credits, and the one rounding rule.

The rounding rule, applied in one place:

* A **hold** is the worst-case cost rounded *up* to the nano-credit, so a hold always covers
  the exact cost of the usage it was sized for.
* A **charge** never rounds per call. Each customer carries the sub-nano remainder of its
  exact costs (``carry``); the nano-credits charged over any run of commits are the exact
  total rounded down, never more and never a whole nano-credit less. A stream of calls that
  each cost 0.4 nano-credit is charged 2 nano-credits every 5 calls, not 0 or 1 per call.

The store applies ``carry`` inside its commit script (``store/lua/commit.lua``), with the same
arithmetic; this module is its reference.
"""

from __future__ import annotations

from collections.abc import Mapping

from sidecar.money import FEMTOS_PER_NANO

__all__ = ["carry", "cost_femtos", "hold_nanos", "split_femtos"]


def cost_femtos(units: Mapping[str, int], prices_femtos: Mapping[str, int]) -> int:
    """Exact cost of ``units`` at ``prices_femtos`` (femto-credits per unit, by kind)."""
    return sum(count * prices_femtos[kind] for kind, count in units.items())


def hold_nanos(femtos: int) -> int:
    """The hold for a worst-case cost: rounded up to the nano-credit."""
    return -(-femtos // FEMTOS_PER_NANO)


def split_femtos(femtos: int) -> tuple[int, int]:
    """Whole nano-credits and the sub-nano remainder (in femto-credits) of an exact cost."""
    return divmod(femtos, FEMTOS_PER_NANO)


def carry(remainder_femtos: int, femtos: int) -> tuple[int, int]:
    """Charge ``femtos`` given the customer's carried remainder; return (nanos, new remainder)."""
    whole, part = split_femtos(femtos)
    remainder_femtos += part
    if remainder_femtos >= FEMTOS_PER_NANO:
        return whole + 1, remainder_femtos - FEMTOS_PER_NANO
    return whole, remainder_femtos
