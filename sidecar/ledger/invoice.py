"""Invoice preview: line items per model and feature, priced by the catalog that priced them.

Pure: aggregated rows in, an ``InvoicePreview`` out. A line's ``amount`` is what its calls were
charged (the ledger's sum, exact); its units are listed with the unit price of the catalog
version and customer contract in force when they were committed, and ``quantity * price``.
The invoice balances: ``subtotal`` = credits applied (by type) + overage.

Settlement (catalog ``plans.<p>.fee``, contract ``discount_percent`` and ``minimum``): each
plan's monthly fee is prorated by the share of its calendar month the plan was in force (a plan
change in the middle of a month splits it; rounded down to the nano-credit per piece); the
discount was applied to the prices the calls were charged at, and is listed as the listed
prices' amount minus the charged one; the true-up, for a calendar month's invoice, is the
commitment in force at its end minus the subtotal, when usage fell short. ``amount_due`` (beyond
credits) = fees + overage + true-up - the overage refunded in the period (a refund issued now
for a call of an earlier period is owed back on this one: the amount may be below 0).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import msgspec

from sidecar.catalog.model import MODEL_UNIT_KINDS, Catalog
from sidecar.engine.customer import (
    CustomerSnapshot,
    minimum_of,
    outcome_price_of,
    prices_of,
    tiers_of,
)
from sidecar.engine.periods import month_end_ms, period_start_ms
from sidecar.engine.tiers import split
from sidecar.engine.volume import volume_rebates
from sidecar.ledger.state import CustomerFact, overrides_of
from sidecar.ledger.wire import (
    CreditsApplied,
    FeeLine,
    InvoiceLine,
    InvoicePreview,
    UnitLine,
    margin_of,
)
from sidecar.money import FEMTOS_PER_NANO, format_credits, format_femtos
from sidecar.times import format_time

__all__ = ["LineTotal", "UnitTotal", "invoice_preview", "unit_price_femtos"]


class UnitTotal(msgspec.Struct, frozen=True, kw_only=True):
    model: str | None
    feature: str
    catalog_version: str
    segment: int
    """Index into the customer's plan changes: which contract was in force."""
    kind: str
    quantity: int


class LineTotal(msgspec.Struct, frozen=True, kw_only=True):
    model: str | None
    feature: str
    events: int
    cost_nanos: int
    serve_femtos: int = 0


def _snapshot(catalog: Catalog, customer: str, change: CustomerFact | None) -> CustomerSnapshot:
    return CustomerSnapshot(
        id=customer,
        plan=change.plan if change else "",
        overrides=overrides_of(change.overrides, catalog) if change else None,
    )


def unit_price_femtos(
    catalog: Catalog,
    customer: str,
    change: CustomerFact | None,
    model: str | None,
    kind: str,
    *,
    listed: bool = False,
) -> int | None:
    """Femto-credits per unit of ``kind`` for this customer under ``catalog`` (``listed``:
    before the contract's discount); None if unpriced."""
    snapshot = _snapshot(catalog, customer, change)
    if kind in MODEL_UNIT_KINDS:
        if model is None:
            return None
        return prices_of(catalog, snapshot, model, listed=listed).get(kind)
    return outcome_price_of(catalog, snapshot, kind, listed=listed)


def _priced(
    catalog: Catalog | None,
    customer: str,
    change: CustomerFact | None,
    unit: UnitTotal,
    counters: dict[tuple[str, str], int],
) -> list[tuple[int | None, int | None, int]]:
    """(price, listed price, units) of ``unit``'s quantity: one row, or one per graduated
    tier it spans, counted on from the units of its model and kind before it (``counters``)."""
    if catalog is None:
        return [(None, None, unit.quantity)]
    if unit.model is not None:
        snapshot = _snapshot(catalog, customer, change)
        tiers = tiers_of(catalog, snapshot, unit.model).get(unit.kind)
        if tiers is not None:
            listed = tiers_of(catalog, snapshot, unit.model, listed=True)[unit.kind]
            key = (unit.model, unit.kind)
            at = counters.get(key, 0)
            counters[key] = at + unit.quantity
            return [
                (tiers[index][1], listed[index][1], count)
                for index, count in split(tiers, at, unit.quantity)
            ]
    price = unit_price_femtos(catalog, customer, change, unit.model, unit.kind)
    listed_price = unit_price_femtos(catalog, customer, change, unit.model, unit.kind, listed=True)
    return [(price, listed_price, unit.quantity)]


def fee_lines(
    changes: Sequence[CustomerFact], start_ms: int, end_ms: int, catalog: Catalog
) -> list[tuple[FeeLine, int]]:
    """Each plan's fee for the time it was in force within ``[start_ms, end_ms)``, prorated
    per calendar month: the lines, with their amounts in nano-credits."""
    out = []
    for index, change in enumerate(changes):
        until = changes[index + 1].ts_ms if index + 1 < len(changes) else end_ms
        plan = catalog.plans.get(change.plan)
        fee = plan.fee_nanos if plan is not None else 0
        begin, stop = max(start_ms, change.ts_ms), min(end_ms, until)
        month = period_start_ms("month", begin) if begin < stop else stop
        while fee and month < stop:
            following = month_end_ms(month)
            piece_start, piece_end = max(begin, month), min(stop, following)
            amount = fee * (piece_end - piece_start) // (following - month)
            out.append((
                FeeLine(
                    plan=change.plan,
                    start=format_time(piece_start),
                    end=format_time(piece_end),
                    amount=format_credits(amount),
                ),
                amount,
            ))  # fmt: skip
            month = following
    return out


def invoice_preview(
    customer: str,
    start_ms: int,
    end_ms: int,
    *,
    lines: Sequence[LineTotal],
    units: Sequence[UnitTotal],
    credits: Mapping[str, int],
    overage_nanos: int,
    overage_refunded_nanos: int = 0,
    changes: Sequence[CustomerFact],
    catalogs: Mapping[str, Catalog],
    current: Catalog | None = None,
) -> InvoicePreview:
    """Assemble the preview; ``credits`` are nano-credits burned by credit type; ``current``:
    the catalog in force, whose fees and commitments settle the period."""
    priced: dict[tuple[str | None, str], dict[tuple[str, int | None], int]] = {}
    discount_femtos = 0
    counters: dict[tuple[str, str], int] = {}
    for unit in sorted(units, key=lambda u: (u.model or "", u.kind, u.segment, u.feature)):
        catalog = catalogs.get(unit.catalog_version)
        change = changes[min(unit.segment, len(changes) - 1)] if changes else None
        kinds = priced.setdefault((unit.model, unit.feature), {})
        for price, listed, quantity in _priced(catalog, customer, change, unit, counters):
            if price is not None:
                discount_femtos += ((listed or price) - price) * quantity
            kinds[(unit.kind, price)] = kinds.get((unit.kind, price), 0) + quantity
    out_lines = []
    for line in sorted(lines, key=lambda ln: (ln.model or "", ln.feature)):
        kinds = priced.get((line.model, line.feature), {})
        out_lines.append(
            InvoiceLine(
                model=line.model,
                feature=line.feature,
                events=line.events,
                units=[
                    UnitLine(
                        kind=kind,
                        quantity=quantity,
                        unit_price=format_femtos(price) if price is not None else None,
                        amount=format_femtos(price * quantity) if price is not None else None,
                    )
                    for (kind, price), quantity in sorted(
                        kinds.items(), key=lambda item: (item[0][0], item[0][1] or 0)
                    )
                ],
                amount=format_credits(line.cost_nanos),
                serve_cost=format_femtos(line.serve_femtos),
                margin=margin_of(line.cost_nanos, line.serve_femtos),
            )
        )
    subtotal = sum(line.cost_nanos for line in lines)
    serve = sum(line.serve_femtos for line in lines)
    fees = fee_lines(changes, start_ms, end_ms, current) if current is not None else []
    true_up = 0
    whole_month = (
        period_start_ms("month", start_ms)
        == start_ms
        == end_ms - (month_end_ms(start_ms) - start_ms)
    )
    rebate = 0
    if current is not None and changes and whole_month:
        minimum = minimum_of(current, _snapshot(current, customer, changes[-1]))
        true_up = max(0, (minimum or 0) - subtotal)
        month_units: dict[tuple[str, str], int] = {}
        for unit in units:
            if unit.model is not None:
                key = (unit.model, unit.kind)
                month_units[key] = month_units.get(key, 0) + unit.quantity
        last = changes[-1]

        def price_of(model: str, kind: str) -> int | None:
            return unit_price_femtos(current, customer, last, model, kind)

        rebate = sum(volume_rebates(current, month_units, price_of).values()) // FEMTOS_PER_NANO
    fee_total = sum(amount for _, amount in fees)
    return InvoicePreview(
        customer=customer,
        start=format_time(start_ms),
        end=format_time(end_ms),
        lines=out_lines,
        subtotal=format_credits(subtotal),
        credits_applied=[
            CreditsApplied(credit_type=credit_type, amount=format_credits(amount))
            for credit_type, amount in sorted(credits.items())
            if amount
        ],
        overage=format_credits(overage_nanos),
        catalog_versions=sorted({unit.catalog_version for unit in units}),
        fees=[fee for fee, _ in fees],
        discount=format_credits(discount_femtos // FEMTOS_PER_NANO),
        true_up=format_credits(true_up),
        overage_refunded=format_credits(overage_refunded_nanos),
        amount_due=format_credits(fee_total + overage_nanos + true_up - overage_refunded_nanos),
        rebate=format_credits(rebate),
        serve_cost=format_femtos(serve),
        margin=margin_of(subtotal, serve),
    )
