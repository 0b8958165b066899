"""The compiled catalog: immutable, exact integers, shaped for lookups on the hot path."""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = [
    "MAX_PRIORITY",
    "MODEL_UNIT_KINDS",
    "TOKEN_UNIT_KINDS",
    "Catalog",
    "Contract",
    "CreditType",
    "Fallback",
    "Feature",
    "Grant",
    "Period",
    "Plan",
    "PlanFeature",
    "RateLimit",
    "Tiers",
]

Period = Literal["day", "month", "lifetime"]
TOKEN_UNIT_KINDS = ("input_tokens", "cached_input_tokens", "output_tokens")
MODEL_UNIT_KINDS = (*TOKEN_UNIT_KINDS, "requests")
MAX_PRIORITY = 999_999
"""Burn keys (``engine/burn.py``) write the priority in 6 digits; a 7th would break their order."""


class _Model(msgspec.Struct, frozen=True, kw_only=True):
    pass


class CreditType(_Model, frozen=True):
    id: str
    priority: int
    models: frozenset[str] | None


class Fallback(_Model, frozen=True):
    """How a feature is decided while Redis cannot answer: in process, within these caps."""

    overdraft_nanos: int
    """Per customer and sidecar: what fallback holds and commits not yet replayed may add to."""
    per_call_nanos: int | None


class Feature(_Model, frozen=True):
    id: str
    type: Literal["boolean", "config", "metered"]
    counts: tuple[str, ...]
    fallback: Fallback | None = None
    """None: denied (``store_unavailable``) while Redis cannot answer."""
    stream_hold_tokens: int | None = None
    """The proxy's first hold of a stream's output, and each step it grows by."""


class PlanFeature(_Model, frozen=True):
    limit: int | None
    period: Period
    value: int | str | None


class Grant(_Model, frozen=True):
    credit_type: str
    amount_nanos: int
    rollover_cap_nanos: int | None = None
    """What is left at the month's end rolls over, up to this (ledger/close.py); None: nothing."""
    rollover_months: int = 1


class RateLimit(_Model, frozen=True):
    scope: Literal["customer", "team", "user", "agent"]
    requests_per_minute: int | None
    tokens_per_minute: int | None


class Plan(_Model, frozen=True):
    id: str
    features: dict[str, PlanFeature]
    models: frozenset[str]
    grants: tuple[Grant, ...]
    rate_limits: tuple[RateLimit, ...]
    session_budget_nanos: int | None
    overage_cap_nanos: int
    """Credits per month that may be consumed past the balance; 0 denies when credits run out."""
    alert_budgets: str | None = None
    """Default thresholds on every budget, compiled (engine/alerts.py)."""
    alert_balance: str | None = None
    """Default thresholds on the credit balance, compiled."""
    fee_nanos: int = 0
    """Per calendar month, prorated by the time the plan is in force."""
    margin_floor_percent: int | None = None
    """The operator's margin alert: below this percent of revenue (ledger/margins.py)."""


Tiers = tuple[tuple[int | None, int], ...]
"""Graduated tiers of one unit kind: (up to this many units in the month, or None for the
rest; femto-credits per unit), in order."""


class Contract(_Model, frozen=True):
    prices_femtos: dict[str, dict[str, int]]
    outcome_prices_femtos: dict[str, int]
    limits: dict[str, int]
    discount_percent: int | None = None
    minimum_nanos: int | None = None
    tiers_femtos: dict[str, dict[str, Tiers]] = {}


class Catalog(_Model, frozen=True):
    """A whole catalog; a reload builds a new one and swaps it in whole."""

    version: str
    name: str
    credit_types: dict[str, CreditType]
    prices_femtos: dict[str, dict[str, int]]
    """Model -> unit kind -> femto-credits per unit; for a tiered kind its highest tier's
    price, which holds count on."""
    outcome_prices_femtos: dict[str, int]
    costs_femtos: dict[str, dict[str, int]]
    """Model -> unit kind -> femto-credits the provider charges per unit (the cost of
    serve); models and kinds without one cost nothing to serve as far as we know."""
    max_output_tokens: dict[str, int]
    """Model -> the most output tokens one call can produce (models that say)."""
    features: dict[str, Feature]
    plans: dict[str, Plan]
    contracts: dict[str, Contract]

    volume_femtos: dict[str, dict[str, tuple[tuple[int, int], ...]]] = {}
    """Model -> unit kind -> (from units, femto-credits per unit), ascending (ledger/close.py)."""
    rebate_credit_type: str | None = None
    tiers_femtos: dict[str, dict[str, Tiers]] = {}
    """Model -> unit kind -> graduated tiers (engine/tiers.py), priced in the commit script."""
