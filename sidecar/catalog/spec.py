"""The catalog file's schema, exactly as written in YAML.

Decoded with unknown fields forbidden; amounts and prices stay strings here and become exact
integers in ``compile.py``. Ids are the mapping keys, so an id cannot be declared twice.
"""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = [
    "CatalogSpec",
    "ContractSpec",
    "CreditTypeSpec",
    "ExhaustedSpec",
    "FeatureSpec",
    "GrantSpec",
    "ModelSpec",
    "OutcomeSpec",
    "PlanFeatureSpec",
    "PlanSpec",
    "RateLimitSpec",
]

Period = Literal["day", "month", "lifetime"]
Scope = Literal["customer", "team", "user", "agent"]


class _Spec(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


class CreditTypeSpec(_Spec, frozen=True):
    priority: int
    """Lower burns first; ties break on earliest expiry, then oldest grant."""
    models: list[str] | None = None
    """When set, credits of this type pay only for these models."""
    description: str = ""


class VolumeTierSpec(_Spec, frozen=True):
    """From this many units of a kind in a month, every unit of that month at this price."""

    units: int
    price_per_million: str


class TierSpec(_Spec, frozen=True):
    """A graduated tier: the units of a kind in a month up to ``up_to`` (from the previous
    tier's) at this price; the last tier has no ``up_to``."""

    up_to: int | None = None
    price_per_million: str | None = None
    price: str | None = None
    """Credits per single unit (instead of per million)."""


class ModelSpec(_Spec, frozen=True):
    prices_per_million: dict[str, str] = {}
    """Credits per million units, by unit kind (input_tokens, output_tokens, ...)."""
    prices: dict[str, str] = {}
    """Credits per single unit, by unit kind (typically requests)."""
    max_output_tokens: int | None = None
    """The most output tokens one call can produce: the proxy's worst case for a call that
    sets no ``max_tokens`` (sidecar/proxy/bounds.py)."""
    volume: dict[str, list[VolumeTierSpec]] = {}
    """Volume pricing by unit kind, settled when the month closes (ledger/close.py)."""
    tiers: dict[str, list[TierSpec]] = {}
    """Graduated prices by unit kind, over the customer's month, priced at commit."""
    costs_per_million: dict[str, str] = {}
    """The cost of serve (what the provider charges us, in credits) per million units, by
    unit kind: recorded on every event beside what the customer pays."""
    costs: dict[str, str] = {}
    """The cost of serve per single unit, by unit kind."""
    description: str = ""


class OutcomeSpec(_Spec, frozen=True):
    price: str
    """Credits per outcome (a resolved ticket, a finished task)."""
    description: str = ""


class FeatureSpec(_Spec, frozen=True):
    type: Literal["boolean", "config", "metered"]
    description: str = ""
    unit: str | None = None
    """Metered features: the name of what is counted (tokens, steps, tickets)."""
    counts: list[str] | None = None
    """Metered features: the unit kinds that count toward the limit."""
    on_store_unavailable: Literal["deny", "allow"] = "deny"
    """While Redis cannot answer: deny (``store_unavailable``), or allow from the cached
    customer and catalog, within ``overdraft`` (docs/design.md, "Fallback")."""
    overdraft: str | None = None
    """``allow`` only, required: credits one customer may spend on this feature per sidecar
    while Redis cannot answer (holds and commits decided in fallback, not yet replayed)."""
    overdraft_per_call: str | None = None
    """``allow`` only: the largest hold one call may get in fallback; absent: no such cap."""
    stream_hold_tokens: int | None = None
    """Metered features: a stream through the proxy first holds this many output tokens and
    grows its hold by as many each time its output reaches it (sidecar/proxy/stream.py);
    absent: it holds its whole worst case from the start."""


class PlanFeatureSpec(_Spec, frozen=True):
    limit: int | None = None
    """Metered features: units allowed per period; absent means unlimited."""
    period: Period = "month"
    value: int | str | None = None
    """Config features: the value this plan gets."""


class RolloverSpec(_Spec, frozen=True):
    """What of a month's grant is left at its end moves into a bucket of its own."""

    cap: str
    """At most this many credits roll over."""
    expires_after_months: int = 1
    """The rolled-over bucket expires at the end of this many more months."""


class GrantSpec(_Spec, frozen=True):
    credit_type: str
    amount: str
    every: Literal["month"] = "month"
    """Recurring: issued at the start of each calendar month (UTC) and expiring at its end."""
    rollover: RolloverSpec | None = None


class RateLimitSpec(_Spec, frozen=True):
    scope: Scope = "customer"
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None


class ExhaustedSpec(_Spec, frozen=True):
    action: Literal["deny", "overage"] = "deny"
    cap: str | None = None
    """Overage only: credits that may be consumed past the balance per calendar month."""


class AlertsSpec(_Spec, frozen=True):
    """The plan's default alert thresholds (engine/alerts.py); a customer's admins may set
    their own per budget."""

    budgets: list[str] = []
    """On every budget of the customer: ``"80%"`` of its limit, or credits used."""
    balance: list[str] = []
    """On the credit balance: credits left, ``"10"``."""
    margin: str | None = None
    """The operator's floor on the margin of the month so far, ``"20%"`` of revenue: a customer
    on the plan, or the plan as a whole, below it raises an alert to the operator's webhooks
    (ledger/margins.py)."""


class PlanSpec(_Spec, frozen=True):
    features: dict[str, PlanFeatureSpec]
    models: list[str] = []
    grants: list[GrantSpec] = []
    rate_limits: list[RateLimitSpec] = []
    session_budget: str | None = None
    """Default hard budget of one session (an agent run), in credits."""
    on_credits_exhausted: ExhaustedSpec = ExhaustedSpec()
    alerts: AlertsSpec = AlertsSpec()
    fee: str | None = None
    """Credits per month, prorated by the days a plan is in force (invoice preview)."""
    description: str = ""


class ContractSpec(_Spec, frozen=True):
    """Per-customer overrides negotiated in a contract."""

    prices_per_million: dict[str, dict[str, str]] = {}
    """Model -> unit kind -> credits per million units."""
    prices: dict[str, dict[str, str]] = {}
    """Model -> unit kind -> credits per unit."""
    tiers: dict[str, dict[str, list[TierSpec]]] = {}
    """Model -> unit kind -> graduated tiers, replacing the catalog's price of that kind."""
    outcome_prices: dict[str, str] = {}
    limits: dict[str, int] = {}
    """Metered feature -> units per period."""
    discount_percent: int | None = None
    """Off every usage price (whole percent, 0 to 100), applied where calls are priced."""
    minimum: str | None = None
    """A monthly commitment in credits: the invoice adds a true-up when usage falls short."""


class CatalogSpec(_Spec, frozen=True):
    credit_types: dict[str, CreditTypeSpec]
    models: dict[str, ModelSpec]
    features: dict[str, FeatureSpec]
    plans: dict[str, PlanSpec]
    outcomes: dict[str, OutcomeSpec] = {}
    contracts: dict[str, ContractSpec] = {}
    rebate_credit_type: str | None = None
    """The credit type volume rebates are granted in; required with volume pricing."""
    name: str = ""
