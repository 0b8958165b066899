"""The overdraft of calls answered in fallback: pure."""

from __future__ import annotations

from sidecar.catalog.model import Fallback
from sidecar.service.overdraft import Overdraft, Pending
from sidecar.store.records import Attribution

POLICY = Fallback(overdraft_nanos=1000, per_call_nanos=600)


def _call(hold: int, key: str, *, counted: bool = True) -> Pending:
    ev = Attribution(customer="acme", feature="assist", request_id=key, tags="{}")
    return Pending(ev, key, hold, 0, counted=counted)


def test_holds_count_until_committed_or_released_and_leave_with_their_last_entry() -> None:
    book = Overdraft()
    assert book.refusal(POLICY, "acme", "assist", 700) == "fallback/overdraft_per_call"
    for rid, hold in (("a", 500), ("b", 500)):
        book.add(rid, _call(hold, rid))
        book.spooled(rid)
    assert book.refusal(POLICY, "acme", "assist", 1) == "fallback/overdraft"
    book.commit("a", 200)
    book.spooled("a")
    book.release("b")
    book.spooled("b")
    assert book.spent("acme", "assist") == 200
    assert book.refusal(POLICY, "acme", "assist", 600) is None
    assert book.by_key("acme", "a") == ("a", book.calls["a"])
    book.done("a")  # its reserve replayed; its commit still waits
    assert book.spent("acme", "assist") == 200
    book.done("a")
    assert (book.spent("acme", "assist"), book.by_key("acme", "a")) == (0, None)
    assert book.refusal(POLICY, "acme", "other", 600) is None  # per customer and feature


def test_a_hold_redis_placed_counts_nothing() -> None:
    book = Overdraft()
    book.add("live", _call(900, "", counted=False))
    assert book.spent("acme", "assist") == 0
