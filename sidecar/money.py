"""Exact amounts: decimal strings on the wire, integers inside.

* An **amount** is an integer of nano-credits (10^-9 credit). On the wire it is a decimal
  string of credits with at most 9 fractional digits; it is always formatted with exactly 9.
* A **price** is an integer of femto-credits (10^-15 credit) per unit, so a price of a
  nano-credit per million tokens is still exact. Catalogs write prices per unit (at most 15
  fractional digits) or per million units (at most 9).

No float ever touches an amount or a price.
"""

from __future__ import annotations

import re

from sidecar.errors import InvalidInput

__all__ = [
    "FEMTOS_PER_CREDIT",
    "FEMTOS_PER_NANO",
    "MAX_AMOUNT_NANOS",
    "MAX_INT64",
    "NANOS_PER_CREDIT",
    "format_credits",
    "format_femtos",
    "parse_credits",
    "parse_price",
    "parse_signed_credits",
]

NANOS_PER_CREDIT = 10**9
FEMTOS_PER_NANO = 10**6
FEMTOS_PER_CREDIT = NANOS_PER_CREDIT * FEMTOS_PER_NANO
# One amount on the wire is at most 10^9 credits; balances and counters hold far more.
MAX_AMOUNT_NANOS = 10**9 * NANOS_PER_CREDIT

MAX_INT64 = 2**63 - 1
"""The largest count or amount gRPC (int64) and Redis (HINCRBY) carry."""

_DECIMAL = re.compile(r"(0|[1-9][0-9]*)(?:\.([0-9]+))?")


def _parse_decimal(text: str, scale_digits: int, field: str, what: str) -> int:
    match = _DECIMAL.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise InvalidInput(
            field,
            f'must be a non-negative decimal string of {what}, like "12.5", got {text!r}',
        )
    whole: str = match.group(1)
    fraction: str = match.group(2) or ""
    if len(fraction) > scale_digits:
        raise InvalidInput(
            field,
            f"has {len(fraction)} fractional digits, at most {scale_digits} are exact: {text!r}",
        )
    return int(whole + fraction.ljust(scale_digits, "0"))


def parse_credits(text: str, field: str, *, maximum: int = MAX_AMOUNT_NANOS) -> int:
    """Parse a credit amount like ``"0.00084"`` into nano-credits, exactly."""
    nanos = _parse_decimal(text, 9, field, "credits")
    if nanos > maximum:
        raise InvalidInput(field, f"must be at most {format_credits(maximum)} credits, got {text}")
    return nanos


def parse_signed_credits(text: str, field: str) -> int:
    """Parse a credit amount that may be negative (a remaining past its cap), into nano-credits."""
    if text.startswith("-"):
        return -parse_credits(text[1:], field, maximum=2**63)
    return parse_credits(text, field, maximum=2**63)


def parse_price(text: str, field: str, *, per_million: bool) -> int:
    """Parse a catalog price into femto-credits per unit.

    ``per_million`` prices are written as vendors publish them ("2.50" credits per million
    tokens) and may have 9 fractional digits; per-unit prices may have 15.
    """
    if per_million:
        return _parse_decimal(text, 9, field, "credits per million units")
    return _parse_decimal(text, 15, field, "credits per unit")


def format_credits(nanos: int) -> str:
    """Format nano-credits as a decimal string of credits with exactly 9 fractional digits."""
    sign = "-" if nanos < 0 else ""
    whole, fraction = divmod(abs(nanos), NANOS_PER_CREDIT)
    return f"{sign}{whole}.{fraction:09d}"


def format_femtos(femtos: int) -> str:
    """Femto-credits as credits: every significant digit, and at least 9 fractional digits."""
    sign = "-" if femtos < 0 else ""
    whole, fraction = divmod(abs(femtos), FEMTOS_PER_CREDIT)
    digits = f"{fraction:015d}".rstrip("0").ljust(9, "0")
    return f"{sign}{whole}.{digits}"
