"""The ledger's answers on the wire, and how times and exact amounts are written.

Amounts are decimal strings of credits with exactly 9 fractional digits, as everywhere in
Creditgate; prices (femto-credits per unit inside) keep every digit they have, at least 9.
Times are RFC 3339 in UTC with milliseconds.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

from sidecar.errors import InvalidInput
from sidecar.money import FEMTOS_PER_NANO, format_femtos
from sidecar.times import ms_of

__all__ = [
    "AlertEntry",
    "AlertsAnswer",
    "AuditAnswer",
    "AuditEntry",
    "BalanceAnswer",
    "BudgetRow",
    "BudgetsAnswer",
    "CreditTypeBalance",
    "CreditsApplied",
    "FeeLine",
    "InvoiceCorrection",
    "InvoiceLine",
    "InvoicePreview",
    "UnitLine",
    "UsageAnswer",
    "UsageRow",
    "margin_of",
    "month_range",
]


def month_range(text: str) -> tuple[int, int]:
    """``2026-11`` as ms ``[start, end)`` of that calendar month (UTC); InvalidInput otherwise."""
    try:
        start = datetime.strptime(text, "%Y-%m").replace(tzinfo=UTC)
    except (TypeError, ValueError):
        raise InvalidInput("month", f"must be YYYY-MM, got {text!r}") from None
    year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
    return ms_of(start), ms_of(start.replace(year=year, month=month))


def margin_of(revenue_nanos: int, serve_femtos: int) -> str:
    """Revenue minus the cost of serve, exact, as credits."""
    return format_femtos(revenue_nanos * FEMTOS_PER_NANO - serve_femtos)


class _Answer(msgspec.Struct, frozen=True, kw_only=True):
    pass


class CreditTypeBalance(_Answer, frozen=True):
    credit_type: str
    granted: str
    used: str
    """Burned by consumption."""
    expired: str
    """Written off at expiry, plus what is left in expired buckets not yet written off."""
    adjusted: str
    """Refunds and adjustments."""
    available: str
    """Left in buckets that have not expired."""


class BalanceAnswer(_Answer, frozen=True):
    customer: str
    at: str
    available: str
    credit_types: list[CreditTypeBalance]
    overage: str
    """Consumption no credits covered, billed as overage, less what refunds gave back of it."""


class UsageRow(_Answer, frozen=True):
    bucket: str | None
    group: dict[str, str | None]
    events: int
    cost: str
    overage: str
    """The part of ``cost`` no credits covered."""
    units: dict[str, int]
    serve_cost: str = "0.000000000"
    """What serving these calls cost us (the catalog's model costs), exact to the femto."""
    margin: str = "0.000000000"
    """``cost`` (the revenue) minus ``serve_cost``."""


class UsageAnswer(_Answer, frozen=True):
    customer: str
    start: str = msgspec.field(name="from")
    end: str = msgspec.field(name="to")
    group_by: list[str]
    bucket: str | None
    rows: list[UsageRow]
    events: int
    cost: str
    team: str | None = None
    """Only this team's calls (a team-scoped token's view)."""
    serve_cost: str = "0.000000000"
    margin: str = "0.000000000"


class UnitLine(_Answer, frozen=True):
    kind: str
    quantity: int
    unit_price: str | None
    """Credits per unit from the catalog version that priced the calls (None: unknown)."""
    amount: str | None
    """``quantity * unit_price``, exact."""


class InvoiceLine(_Answer, frozen=True):
    model: str | None
    feature: str
    events: int
    units: list[UnitLine]
    amount: str
    """What these calls were charged: the exact price of their units, rounded down once per
    customer by the carry rule (or the amount the caller priced them at)."""
    serve_cost: str = "0.000000000"
    """What serving them cost us (the catalog's model costs), exact to the femto."""
    margin: str = "0.000000000"
    """``amount`` minus ``serve_cost``."""


class CreditsApplied(_Answer, frozen=True):
    credit_type: str
    amount: str


class InvoiceCorrection(_Answer, frozen=True):
    id: str
    at: str
    kind: str
    """``refund`` (credits back for a call), ``adjustment`` (a debit, or a credit)."""
    corrects: str | None
    reason: str
    amount: str
    """Signed credits, from the customer's side: a refund or a credit adds."""
    uncovered: str = "0.000000000"
    """Of a refund's amount, what it gave back of the call's uncovered cost (billed as
    overage, not paid with credits)."""


class FeeLine(_Answer, frozen=True):
    plan: str
    start: str = msgspec.field(name="from")
    end: str = msgspec.field(name="to")
    amount: str
    """The plan's monthly fee times the share of its month it was in force, rounded down."""


class InvoicePreview(_Answer, frozen=True):
    customer: str
    start: str = msgspec.field(name="from")
    end: str = msgspec.field(name="to")
    lines: list[InvoiceLine]
    subtotal: str
    credits_applied: list[CreditsApplied]
    overage: str
    """What no credits covered: ``subtotal`` = sum of ``credits_applied`` + ``overage``."""
    catalog_versions: list[str]
    corrections: list[InvoiceCorrection] = msgspec.field(default_factory=list)
    """Refunds and adjustments made in the period: new entries, never a changed line."""
    corrected: str = "0.000000000"
    """Their sum: credits returned (+) or taken (-)."""
    fees: list[FeeLine] = msgspec.field(default_factory=list)
    """The plans' fees, prorated by the time each was in force (plan changes split them)."""
    discount: str = "0.000000000"
    """What the contract's discount took off the listed prices of these calls (their
    ``amount`` is after it)."""
    true_up: str = "0.000000000"
    """For a calendar month: the contract's commitment minus ``subtotal``, when short."""
    overage_refunded: str = "0.000000000"
    """The overage that refunds made in the period gave back (of calls of any period)."""
    amount_due: str = "0.000000000"
    """Beyond credits: fees + overage + true-up - ``overage_refunded`` (below 0: owed back)."""
    rebate: str = "0.000000000"
    """For a calendar month: the volume rebate its close grants back as credits (ledger/
    close.py), from the tier each model's month of units reached."""
    serve_cost: str = "0.000000000"
    """What serving the period's calls cost us."""
    margin: str = "0.000000000"
    """``subtotal`` (usage revenue, before fees and corrections) minus ``serve_cost``."""


class AuditEntry(_Answer, frozen=True):
    id: str
    at: str
    actor: str
    """``operator``, or the id of the scoped admin token that made the change."""
    action: str
    team: str | None
    detail: dict[str, Any]


class AuditAnswer(_Answer, frozen=True):
    customer: str
    start: str = msgspec.field(name="from")
    end: str = msgspec.field(name="to")
    entries: list[AuditEntry] = msgspec.field(default_factory=list)


class AlertEntry(_Answer, frozen=True):
    id: str
    at: str
    scope: str
    period: str | None
    rule: str
    threshold: str
    used: str
    limit: str | None
    mode: str | None


class AlertsAnswer(_Answer, frozen=True):
    customer: str
    start: str = msgspec.field(name="from")
    end: str = msgspec.field(name="to")
    alerts: list[AlertEntry] = msgspec.field(default_factory=list)


class BudgetRow(_Answer, frozen=True):
    scope: str
    period: str
    mode: str
    limit: str
    used: str
    """Spent by the budget's node in the period running (reservation time)."""


class BudgetsAnswer(_Answer, frozen=True):
    customer: str
    at: str
    budgets: list[BudgetRow]
