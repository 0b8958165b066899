"""Movements of money that an event records: the ``ledger_entries`` rows. Pure.

Signs are from the customer's point of view: a grant adds, a debit (one entry per bucket
burned), an expiry write-off and an overage (consumption no credits covered) subtract; a
correction adds (a refund) or subtracts (a debit adjustment) one entry per bucket it moved,
and a refund of uncovered cost (billed as overage) adds one entry of no grant.
``(event_id, seq)`` is unique, so a re-delivered event adds nothing twice.
"""

from __future__ import annotations

import msgspec

from sidecar.ledger.events import Correction, Debit, Event, Expiry, Grant

__all__ = ["Entry", "entries_of"]


class Entry(msgspec.Struct, frozen=True, kw_only=True):
    event_id: str
    seq: int
    customer: str
    kind: str
    credit_type: str | None
    grant_id: str | None
    amount_nanos: int
    ts_ms: int


def entries_of(event: Event) -> list[Entry]:
    """The ledger entries of one event (none for budget, customer and unparsed events)."""
    if isinstance(event, Grant):
        return [
            Entry(
                event_id=event.event_id, seq=0, customer=event.customer, kind="grant",
                credit_type=event.credit_type, grant_id=event.grant_id,
                amount_nanos=event.amount_nanos, ts_ms=event.ts_ms,
            )
        ]  # fmt: skip
    if isinstance(event, Expiry):
        return [
            Entry(
                event_id=event.event_id, seq=0, customer=event.customer, kind="expiry",
                credit_type=event.credit_type, grant_id=event.grant_id,
                amount_nanos=-event.amount_nanos, ts_ms=event.ts_ms,
            )
        ]  # fmt: skip
    if isinstance(event, Correction):
        moved = [
            Entry(
                event_id=event.event_id, seq=seq, customer=event.customer, kind=event.kind,
                credit_type=move.credit_type, grant_id=move.grant_id,
                amount_nanos=int(move.amount), ts_ms=event.ts_ms,
            )
            for seq, move in enumerate(event.moves)
        ]  # fmt: skip
        if event.uncovered_nanos:
            moved.append(
                Entry(
                    event_id=event.event_id, seq=len(moved), customer=event.customer,
                    kind=event.kind, credit_type=None, grant_id=None,
                    amount_nanos=event.uncovered_nanos, ts_ms=event.ts_ms,
                )
            )  # fmt: skip
        return moved
    if not isinstance(event, Debit):
        return []
    out = [
        Entry(
            event_id=event.event_id, seq=seq, customer=event.customer, kind="debit",
            credit_type=burn.credit_type, grant_id=burn.grant_id,
            amount_nanos=-int(burn.amount), ts_ms=event.ts_ms,
        )
        for seq, burn in enumerate(event.burned)
    ]  # fmt: skip
    if event.uncovered_nanos > 0:
        out.append(
            Entry(
                event_id=event.event_id, seq=len(out), customer=event.customer, kind="overage",
                credit_type=None, grant_id=None, amount_nanos=-event.uncovered_nanos,
                ts_ms=event.ts_ms,
            )
        )  # fmt: skip
    return out
