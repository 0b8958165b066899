"""The alert markers a rebuild writes back, so that a threshold already crossed does not fire
a second time in its period. Pure: the ledger's alerts and the money state in, hashes out.

``commit.lua`` marks each threshold it fires: a budget's in a hash beside the period's
counter (``<counter>:alerted``, field ``<scope>|<period>|<rule>|<threshold>``, living as long
as the counter), the balance's in ``alerted`` (field: the threshold), which ``grant.lua``
clears once a grant lifts the balance back above it. A budget marker comes back with its
counter's TTL, or, where the counter is not rebuilt (refunded down to 0), for as long as a
counter of that period lives after the call that fired it. A balance marker comes back while
the balance is at or below its threshold: above it, a grant may have cleared it (it is left
out, so the alert may fire again rather than never).
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from sidecar.engine.periods import period_ids
from sidecar.ledger.state import RedisState
from sidecar.store import layout

__all__ = ["FiredAlert", "expected_markers"]


class FiredAlert(msgspec.Struct, frozen=True, kw_only=True):
    scope: str
    period: str | None
    rule: str
    threshold_nanos: int
    reserved_ms: int
    """When the call that fired it placed its hold: names the counter it counted in."""


def _counter(alert: FiredAlert) -> str | None:
    if alert.scope.startswith("session:"):
        return layout.session_key(alert.scope.removeprefix("session:"))
    if alert.period not in ("day", "month", "lifetime"):
        return None
    return layout.usage_key(period_ids(alert.reserved_ms).by_period()[alert.period])


def expected_markers(
    alerts: Iterable[FiredAlert], state: RedisState, now_ms: int
) -> tuple[dict[str, dict[str, str]], dict[str, int]]:
    """The marker hashes of ``alerts`` under ``state`` (the customer's rebuilt money state)
    at ``now_ms``, and the TTL of each."""
    hashes: dict[str, dict[str, str]] = {}
    ttl: dict[str, int] = {}
    balance = sum(int(v) for v in state.hashes.get(layout.BUCKET, {}).values())
    for alert in alerts:
        if alert.scope == layout.ALERT_BALANCE:  # the scope commit.lua records it with
            if balance <= alert.threshold_nanos:
                hashes.setdefault(layout.ALERTED, {})[str(alert.threshold_nanos)] = "1"
            continue
        counter = _counter(alert)
        if counter is None:
            continue
        marks = counter + layout.ALERTED_SUFFIX
        if counter in state.ttl_ms:
            left: int | None = state.ttl_ms[counter]
        elif counter in state.hashes:
            left = None  # a counter for ever (the lifetime's)
        else:
            lifetime = layout.counter_ttl_ms(counter)
            left = None if lifetime is None else alert.reserved_ms + lifetime - now_ms
        if left is not None and left <= 0:
            continue  # its period is over: the counter, and its markers, are gone
        name = layout.budget_field(alert.scope, alert.period or "lifetime")
        field = layout.SEP.join((name, alert.rule, str(alert.threshold_nanos)))
        hashes.setdefault(marks, {})[field] = "1"
        if left is not None:
            ttl[marks] = min(left, ttl.get(marks, left))
    return hashes, ttl
