"""The pure core: pricing, local decisions and burn order. No I/O, no asyncio, explicit time.

Invariants the engine upholds (the store upholds the rest, atomically):

* Money is integers: amounts in nano-credits, prices in femto-credits per unit; no float.
* One rounding rule (``pricing``): holds round the worst case up to the nano-credit; charges
  carry each customer's sub-nano remainder, so the sum charged is the exact total rounded down.
* What the cached catalog can decide alone is decided here, with no network round trip:
  ``unknown_feature``, ``feature_not_entitled``, ``model_not_allowed`` and bad input.
* Burn order is priority, then earliest expiry, then oldest grant (``burn.burn_key``).
"""

from sidecar.engine.burn import burn_key, parse_burn_key
from sidecar.engine.customer import CustomerSnapshot
from sidecar.engine.decide import (
    CheckDecision,
    Denial,
    Quota,
    RateCheck,
    ReservePlan,
    plan_check,
    plan_reserve,
    price_usage,
)
from sidecar.engine.pricing import carry, cost_femtos, hold_nanos, split_femtos

__all__ = [
    "CheckDecision",
    "CustomerSnapshot",
    "Denial",
    "Quota",
    "RateCheck",
    "ReservePlan",
    "burn_key",
    "carry",
    "cost_femtos",
    "hold_nanos",
    "parse_burn_key",
    "plan_check",
    "plan_reserve",
    "price_usage",
    "split_femtos",
]
