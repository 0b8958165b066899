"""The pure core: pricing, local decisions and burn order. No I/O, no asyncio, explicit time.

Invariants the engine upholds (the store upholds the rest, atomically):

* Money is integers: amounts in nano-credits, prices in femto-credits per unit; no float.
* One rounding rule (``pricing``): holds round the worst case up to the nano-credit; charges
  carry each customer's sub-nano remainder, so the sum charged is the exact total rounded down.
* What the cached catalog can decide alone is decided here, with no network round trip:
  ``unknown_feature``, ``feature_not_entitled``, ``model_not_allowed`` and bad input.
* A request's form is checked once, before any I/O (``parse_reserve``, ``parse_usage``).
* Burn order is priority, then earliest expiry, then oldest grant (``burn.burn_key``).
"""

from sidecar.engine.burn import burn_key, parse_burn_key
from sidecar.engine.customer import CustomerSnapshot
from sidecar.engine.decide import (
    CheckDecision,
    Denial,
    ParsedReserve,
    Quota,
    RateCheck,
    ReservePlan,
    parse_reserve,
    plan_check,
    plan_reserve,
)
from sidecar.engine.pricing import carry, cost_femtos, hold_nanos, split_femtos
from sidecar.engine.settle import Charge, plan_commit
from sidecar.engine.usage import Usage, parse_usage, price_usage

__all__ = [
    "Charge",
    "CheckDecision",
    "CustomerSnapshot",
    "Denial",
    "ParsedReserve",
    "Quota",
    "RateCheck",
    "ReservePlan",
    "Usage",
    "burn_key",
    "carry",
    "cost_femtos",
    "hold_nanos",
    "parse_burn_key",
    "parse_reserve",
    "parse_usage",
    "plan_check",
    "plan_commit",
    "plan_reserve",
    "price_usage",
    "split_femtos",
]
