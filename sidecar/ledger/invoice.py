"""Invoice preview: line items per model and feature, priced by the catalog that priced them.

Pure: aggregated rows in, an ``InvoicePreview`` out. A line's ``amount`` is what its calls were
charged (the ledger's sum, exact); its units are listed with the unit price of the catalog
version and customer contract in force when they were committed, and ``quantity * price``.
The invoice balances: ``subtotal`` = credits applied (by type) + overage.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import msgspec

from sidecar.catalog.model import MODEL_UNIT_KINDS, Catalog
from sidecar.engine.customer import CustomerSnapshot, outcome_price_of, prices_of
from sidecar.ledger.state import CustomerFact, overrides_of
from sidecar.ledger.wire import (
    CreditsApplied,
    InvoiceLine,
    InvoicePreview,
    UnitLine,
    format_femtos,
)
from sidecar.money import format_credits
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


def unit_price_femtos(
    catalog: Catalog, customer: str, change: CustomerFact | None, model: str | None, kind: str
) -> int | None:
    """Femto-credits per unit of ``kind`` for this customer under ``catalog``; None if unpriced."""
    snapshot = CustomerSnapshot(
        id=customer,
        plan=change.plan if change else "",
        overrides=overrides_of(change.overrides, catalog) if change else None,
    )
    if kind in MODEL_UNIT_KINDS:
        return prices_of(catalog, snapshot, model).get(kind) if model is not None else None
    return outcome_price_of(catalog, snapshot, kind)


def invoice_preview(
    customer: str,
    start_ms: int,
    end_ms: int,
    *,
    lines: Sequence[LineTotal],
    units: Sequence[UnitTotal],
    credits: Mapping[str, int],
    overage_nanos: int,
    changes: Sequence[CustomerFact],
    catalogs: Mapping[str, Catalog],
) -> InvoicePreview:
    """Assemble the preview; ``credits`` are nano-credits burned by credit type."""
    priced: dict[tuple[str | None, str], dict[tuple[str, int | None], int]] = {}
    for unit in units:
        catalog = catalogs.get(unit.catalog_version)
        change = changes[min(unit.segment, len(changes) - 1)] if changes else None
        price = (
            unit_price_femtos(catalog, customer, change, unit.model, unit.kind)
            if catalog is not None
            else None
        )
        kinds = priced.setdefault((unit.model, unit.feature), {})
        kinds[(unit.kind, price)] = kinds.get((unit.kind, price), 0) + unit.quantity
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
            )
        )
    return InvoicePreview(
        customer=customer,
        start=format_time(start_ms),
        end=format_time(end_ms),
        lines=out_lines,
        subtotal=format_credits(sum(line.cost_nanos for line in lines)),
        credits_applied=[
            CreditsApplied(credit_type=credit_type, amount=format_credits(amount))
            for credit_type, amount in sorted(credits.items())
            if amount
        ],
        overage=format_credits(overage_nanos),
        catalog_versions=sorted({unit.catalog_version for unit in units}),
    )
