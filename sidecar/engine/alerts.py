"""Alert thresholds: pure parsing into the compact form the commit script reads.

A budget threshold is a share of its limit, ``"80%"`` (whole percents, 1 to 1000), or an
amount of credits used, ``"250"``; the balance's thresholds are amounts of credits left,
``"10"``. Compiled, a rule is a comma-separated list: ``p80`` (percent) or ``a<nanos>``
(amount), in the order given; commit.lua fires a threshold when a commit crosses it
(store/lua/commit.lua).
"""

from __future__ import annotations

from collections.abc import Sequence

from sidecar.errors import InvalidInput
from sidecar.money import format_credits, parse_credits

__all__ = ["PERCENT_MAX", "THRESHOLDS_MAX", "compile_thresholds", "describe"]

PERCENT_MAX = 1000
THRESHOLDS_MAX = 10


def _one(field: str, text: str, *, balance: bool) -> str:
    if not isinstance(text, str) or not text:
        raise InvalidInput(field, 'write a threshold as a string: "80%" or credits like "10"')
    if text.endswith("%"):
        if balance:
            raise InvalidInput(
                field, f'{text!r}: the balance\'s thresholds are credits left, like "10"'
            )
        digits = text[:-1]
        if not digits.isdigit() or not 1 <= int(digits) <= PERCENT_MAX:
            raise InvalidInput(field, f"{text!r}: use a whole percent from 1% to {PERCENT_MAX}%")
        return f"p{int(digits)}"
    nanos = parse_credits(text, field)
    if nanos == 0 and not balance:
        raise InvalidInput(field, "a budget threshold of 0 credits is always crossed; use more")
    return f"a{nanos}"


def compile_thresholds(field: str, items: Sequence[str], *, balance: bool) -> str:
    """The compiled rule of ``items``; InvalidInput naming ``field[i]`` when one is bad."""
    if not items:
        raise InvalidInput(field, 'list at least one threshold, e.g. ["50%", "80%", "100%"]')
    if len(items) > THRESHOLDS_MAX:
        raise InvalidInput(field, f"{len(items)} thresholds; use at most {THRESHOLDS_MAX}")
    compiled = [_one(f"{field}[{i}]", text, balance=balance) for i, text in enumerate(items)]
    if len(set(compiled)) != len(compiled):
        raise InvalidInput(field, "names a threshold twice; list each once")
    return ",".join(compiled)


def describe(rule: str) -> list[str]:
    """A compiled rule as it was written: ``p80`` -> ``80%``, ``a10000000000`` -> ``10``."""
    return [
        f"{item[1:]}%" if item[0] == "p" else format_credits(int(item[1:]))
        for item in rule.split(",")
    ]
