"""What this sidecar answered in fallback and Redis does not know yet: pure, no I/O.

A call decided in fallback stays here from its answer until every spool entry about it has
been replayed. While it is here, its money (the hold while open, the cost once committed,
nothing once released) counts against its customer's overdraft for its feature, and a retry
of its reserve, commit or release is answered from here, as the first answer was.
"""

from __future__ import annotations

from dataclasses import dataclass

from sidecar.catalog.model import Fallback
from sidecar.store.records import Attribution

__all__ = ["Overdraft", "Pending"]


@dataclass
class Pending:
    attribution: Attribution
    idempotency_key: str
    held_nanos: int
    expires_at_ms: int
    counted: bool
    """Whether its money counts against the overdraft: a reserve decided in fallback does; a
    hold Redis placed, committed or released in fallback, does not (Redis holds it)."""
    cost_nanos: int | None = None
    """Set once committed."""
    released: bool = False
    entries: int = 0
    """Spool entries about it not yet replayed."""

    @property
    def amount(self) -> int:
        if not self.counted or self.released:
            return 0
        return self.held_nanos if self.cost_nanos is None else self.cost_nanos

    @property
    def open(self) -> bool:
        return self.cost_nanos is None and not self.released


class Overdraft:
    def __init__(self) -> None:
        self.calls: dict[str, Pending] = {}
        """Reservation id -> the call."""
        self._keys: dict[tuple[str, str], str] = {}
        """(customer, idempotency key) -> reservation id, for retried reserves."""
        self._spent: dict[tuple[str, str], int] = {}
        """(customer, feature) -> money of its calls here."""

    def __len__(self) -> int:
        return len(self.calls)

    def spent(self, customer: str, feature: str) -> int:
        return self._spent.get((customer, feature), 0)

    def by_key(self, customer: str, idempotency_key: str) -> tuple[str, Pending] | None:
        rid = self._keys.get((customer, idempotency_key))
        return None if rid is None else (rid, self.calls[rid])

    def refusal(self, policy: Fallback, customer: str, feature: str, hold: int) -> str | None:
        """Why a hold of ``hold`` may not be placed in fallback (the cap it would pass), or
        None when it may."""
        if policy.per_call_nanos is not None and hold > policy.per_call_nanos:
            return "fallback/overdraft_per_call"
        if self.spent(customer, feature) + hold > policy.overdraft_nanos:
            return "fallback/overdraft"
        return None

    def add(self, rid: str, call: Pending) -> None:
        """A call answered here (its money counts at once, before its spool entry is written,
        so that concurrent reserves cannot both take the last room); ``spooled`` counts the
        entry."""
        ev = call.attribution
        self.calls[rid] = call
        if call.counted:
            self._keys[(ev.customer, call.idempotency_key)] = rid
        self._move(call, call.amount)

    def spooled(self, rid: str) -> None:
        call = self.calls.get(rid)
        if call is not None:
            call.entries += 1

    def commit(self, rid: str, cost_nanos: int) -> None:
        call = self.calls[rid]
        before = call.amount
        call.cost_nanos = cost_nanos
        self._move(call, call.amount - before)

    def release(self, rid: str) -> None:
        call = self.calls[rid]
        before = call.amount
        call.released = True
        self._move(call, call.amount - before)

    def done(self, rid: str) -> None:
        """One spool entry about ``rid`` no longer waits (Redis applied it, or it was never
        written); the last one lets the call go."""
        call = self.calls.get(rid)
        if call is None:
            return
        call.entries -= 1
        if call.entries > 0:
            return
        del self.calls[rid]
        ev = call.attribution
        if self._keys.get((ev.customer, call.idempotency_key)) == rid:
            del self._keys[(ev.customer, call.idempotency_key)]
        self._move(call, -call.amount)

    def _move(self, call: Pending, delta: int) -> None:
        if delta:
            key = (call.attribution.customer, call.attribution.feature)
            left = self._spent.get(key, 0) + delta
            if left:
                self._spent[key] = left
            else:
                del self._spent[key]
