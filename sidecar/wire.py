"""The wire contract (docs/design.md): request and response types shared by HTTP and gRPC.

Amounts travel as decimal strings of credits; unit counts are integers. Requests decode with
unknown fields forbidden; semantic checks (ranges, ids, unit kinds) live in the engine
(``engine.decide.parse_reserve``, ``engine.usage.parse_usage``) and the admin service.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from sidecar.catalog.spec import ContractSpec
from sidecar.text import Text

__all__ = [
    "REASONS",
    "AdminToken",
    "AlertRule",
    "AlertsResponse",
    "BalanceResponse",
    "BucketState",
    "BudgetScope",
    "BudgetState",
    "BudgetsResponse",
    "BurnedCredits",
    "CheckRequest",
    "CheckResponse",
    "CommitRequest",
    "CommitResponse",
    "CustomerResponse",
    "DecidedBy",
    "GrantRequest",
    "GrantResponse",
    "IssueProxyKeyRequest",
    "IssueProxyKeyResponse",
    "IssueTokenRequest",
    "IssueTokenResponse",
    "ProxyKey",
    "ProxyKeysResponse",
    "Reason",
    "ReleaseRequest",
    "ReleaseResponse",
    "ReserveRequest",
    "ReserveResponse",
    "RevokeProxyKeyResponse",
    "RevokeTokenResponse",
    "SetAlertsRequest",
    "SetAlertsResponse",
    "SetBudgetRequest",
    "SetBudgetResponse",
    "TokensResponse",
    "UpsertCustomerRequest",
]

Reason = Literal[
    "ok",
    "unknown_customer",
    "unknown_feature",
    "feature_not_entitled",
    "model_not_allowed",
    "insufficient_credits",
    "budget_exceeded",
    "session_budget_exceeded",
    "quota_exceeded",
    "rate_limited",
    "store_unavailable",
]
REASONS: tuple[Reason, ...] = (
    "ok",
    "unknown_customer",
    "unknown_feature",
    "feature_not_entitled",
    "model_not_allowed",
    "insufficient_credits",
    "budget_exceeded",
    "session_budget_exceeded",
    "quota_exceeded",
    "rate_limited",
    "store_unavailable",
)


DecidedBy = Literal["store", "fallback"]
"""``fallback``: answered by the sidecar alone while Redis could not answer (a feature with
``on_store_unavailable: allow``); applied to Redis when it answers again."""


class _Request(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


class _Response(msgspec.Struct, frozen=True, kw_only=True):
    pass


class ReserveRequest(_Request, frozen=True):
    customer: str
    feature: str
    idempotency_key: str
    team: str | None = None
    user: str | None = None
    agent: str | None = None
    session: str | None = None
    model: str | None = None
    units: dict[str, int] | None = None
    """Worst case the call may consume, by unit kind."""
    amount: str | None = None
    """Credits, for features priced outside the catalog; replaces units for pricing."""
    ttl_ms: int = 60_000
    tags: dict[Text, Text] = {}


class ReserveResponse(_Response, frozen=True):
    allowed: bool
    reason: Reason
    reservation_id: str | None = None
    held: str = "0.000000000"
    remaining: dict[str, str] = {}
    soft_limits_hit: list[str] = []
    catalog_version: str = ""
    scope: str | None = None
    """The budget or limit that denied, e.g. ``team:eng/month``."""
    decided_by: DecidedBy = "store"


class CommitRequest(_Request, frozen=True):
    reservation_id: str
    units: dict[str, int] | None = None
    """What the call actually consumed, by unit kind."""
    amount: str | None = None
    estimated: bool = False
    """The units were counted by the caller from what was delivered, not measured (a stream
    cut before the model reported usage); the consumption event says so."""


class BurnedCredits(_Response, frozen=True):
    grant_id: str
    credit_type: str
    amount: str


class CommitResponse(_Response, frozen=True):
    result: Literal["committed", "already_committed", "already_released"]
    cost: str = "0.000000000"
    overrun: str = "0.000000000"
    """Cost above the hold: charged, never dropped."""
    overage: str = "0.000000000"
    """Deprecated: the same as ``overrun``, under the name it had until 0.2; removed in 0.3.
    (Overage is what no credit covered: ``uncovered``.)"""
    released: str = "0.000000000"
    """Hold not needed by the actual cost, returned to every cap."""
    uncovered: str = "0.000000000"
    """Cost no credit bucket covered: billed as overage on the customer."""
    burned: list[BurnedCredits] = []
    catalog_version: str = ""
    decided_by: DecidedBy = "store"


class ReleaseRequest(_Request, frozen=True):
    reservation_id: str


class ReleaseResponse(_Response, frozen=True):
    result: Literal["released", "already_released", "already_committed", "expired"]
    released: str = "0.000000000"
    decided_by: DecidedBy = "store"


class CheckRequest(_Request, frozen=True):
    customer: str
    feature: str
    team: str | None = None
    user: str | None = None
    agent: str | None = None
    session: str | None = None
    model: str | None = None


class CheckResponse(_Response, frozen=True):
    allowed: bool
    reason: Reason
    value: int | str | None = None
    """Config features: the value in force for this customer."""
    remaining: int | None = None
    """Metered features with a limit: units left in the current period."""
    catalog_version: str = ""
    decided_by: DecidedBy = "store"


class BucketState(_Response, frozen=True):
    grant_id: str
    credit_type: str
    amount: str
    priority: int
    expires_at: str | None = None


class BudgetState(_Response, frozen=True):
    scope: str
    period: Literal["day", "month", "lifetime"]
    limit: str
    mode: Literal["hard", "soft"]
    used: str
    held: str
    remaining: str


class BalanceResponse(_Response, frozen=True):
    customer: str
    plan: str
    balance: str
    """Credits in unexpired buckets, minus holds in flight."""
    held: str
    buckets: list[BucketState]
    budgets: list[BudgetState]
    uncovered_used: str
    """Cost no credit covered this month: the month's overage."""
    overage_used: str
    """Deprecated: the same as ``uncovered_used`` (its name until 0.2); removed in 0.3."""


class BudgetsResponse(_Response, frozen=True):
    customer: str
    budgets: list[BudgetState]


class UpsertCustomerRequest(_Request, frozen=True):
    plan: str
    overrides: ContractSpec | None = None


class CustomerResponse(_Response, frozen=True):
    customer: str
    plan: str
    result: Literal["upserted", "unchanged"]
    """``unchanged`` when the customer already had this plan and these overrides."""


class GrantRequest(_Request, frozen=True):
    credit_type: str
    amount: str
    idempotency_key: str
    priority: int | None = None
    """Defaults to the credit type's priority."""
    expires_at: str | None = None
    """RFC 3339 UTC, e.g. ``2027-01-01T00:00:00Z``; absent means never."""


class GrantResponse(_Response, frozen=True):
    result: Literal["granted", "already_granted"]
    grant_id: str
    credit_type: str
    amount: str
    priority: int
    expires_at: str | None = None


class BudgetScope(_Request, frozen=True):
    team: str | None = None
    user: str | None = None
    agent: str | None = None
    session: str | None = None


class SetBudgetRequest(_Request, frozen=True):
    limit: str
    scope: BudgetScope = BudgetScope()
    period: Literal["day", "month", "lifetime"] = "month"
    mode: Literal["hard", "soft"] = "hard"


class SetBudgetResponse(_Response, frozen=True):
    scope: str
    period: Literal["day", "month", "lifetime"]
    limit: str
    mode: Literal["hard", "soft"]
    result: Literal["set", "unchanged"] = "set"
    """``unchanged`` when the budget already had this limit and mode."""


class IssueProxyKeyRequest(_Request, frozen=True):
    """A key for the proxy (sidecar/proxy): calls made with it are paid by this subject."""

    idempotency_key: str
    label: Text = ""
    team: str | None = None
    user: str | None = None
    agent: str | None = None


class ProxyKey(_Response, frozen=True):
    """A proxy key as listed: never its secret."""

    id: str
    customer: str
    label: str
    created_at: str
    team: str | None = None
    user: str | None = None
    agent: str | None = None
    revoked_at: str | None = None


class IssueProxyKeyResponse(_Response, frozen=True):
    result: Literal["issued", "already_issued"]
    key: ProxyKey
    secret: str | None = None
    """The bearer token, shown once, when issued; only its hash is stored. A retry with the
    same idempotency key answers ``already_issued`` without it."""


class ProxyKeysResponse(_Response, frozen=True):
    keys: list[ProxyKey]


class RevokeProxyKeyResponse(_Response, frozen=True):
    result: Literal["revoked", "already_revoked"]
    key: ProxyKey


class IssueTokenRequest(_Request, frozen=True):
    """A token for an end customer's own admins (access.py): scoped to the customer, or to
    one team inside it, with a role."""

    idempotency_key: str
    role: Literal["viewer", "admin"]
    label: Text = ""
    team: str | None = None
    expires_at: str | None = None
    """RFC 3339; after it, the token is refused 401. None: until revoked."""


class AdminToken(_Response, frozen=True):
    """A scoped admin token as listed: never its secret."""

    id: str
    customer: str
    role: Literal["viewer", "admin"]
    label: str
    created_at: str
    team: str | None = None
    expires_at: str | None = None
    revoked_at: str | None = None


class IssueTokenResponse(_Response, frozen=True):
    result: Literal["issued", "already_issued"]
    token: AdminToken
    secret: str | None = None
    """The bearer token, shown once, when issued; only its hash is stored."""


class TokensResponse(_Response, frozen=True):
    tokens: list[AdminToken]


class RevokeTokenResponse(_Response, frozen=True):
    result: Literal["revoked", "already_revoked"]
    token: AdminToken


class SetAlertsRequest(_Request, frozen=True):
    """The customer's own alert thresholds on one budget, or on the balance, in place of the
    plan's default (engine/alerts.py)."""

    thresholds: list[str]
    """``"80%"`` of the budget's limit or credits (``"250"``); the balance's are credits left.
    Empty: remove the customer's own rule, so that the plan's default applies again."""
    target: Literal["budget", "balance"] = "budget"
    scope: BudgetScope = BudgetScope()
    """The budget's subject node (none: the customer)."""
    period: Literal["day", "month", "lifetime"] = "month"


class AlertRule(_Response, frozen=True):
    scope: str
    """``customer``, ``team:eng``, ... or ``balance``."""
    period: str | None
    thresholds: list[str]
    source: Literal["customer", "plan"]
    """The customer's own rule, or the plan's default (on every budget: scope ``*``)."""


class SetAlertsResponse(_Response, frozen=True):
    result: Literal["set", "removed", "unchanged"]
    rule: AlertRule


class AlertsResponse(_Response, frozen=True):
    rules: list[AlertRule]
