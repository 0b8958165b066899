"""Which alert markers a rebuild writes back (ledger/markers.py): pure."""

from __future__ import annotations

from sidecar.ledger.markers import FiredAlert, expected_markers
from sidecar.ledger.state import RedisState
from sidecar.store import layout

NOV_19 = 1_763_553_600_000  # 2025-11-19 12:00 UTC
CREDIT = 10**9
DAY_MS = 86_400_000


def _state(balance: int, counters: dict[str, int]) -> RedisState:
    return RedisState(
        customer="acme",
        hashes={layout.BUCKET: {"b1": str(balance)}} | {c: {"x": "1"} for c in counters},
        buckets=["b1"],
        ttl_ms=counters,
        idempotency_keys=[],
    )


def test_a_budget_marker_comes_back_with_its_counter_and_a_balance_one_while_below() -> None:
    alerts = [
        FiredAlert(scope="customer", period="day", rule="p50", threshold_nanos=CREDIT // 2,
                   reserved_ms=NOV_19),
        FiredAlert(scope="team:eng", period="month", rule="p80", threshold_nanos=8 * CREDIT,
                   reserved_ms=NOV_19 - 80 * DAY_MS),  # August's counter is gone
        FiredAlert(scope="user:u1", period="day", rule="p90", threshold_nanos=9 * CREDIT,
                   reserved_ms=NOV_19 - DAY_MS),  # the 18th's: refunded to 0, not rebuilt
        FiredAlert(scope="session:s1", period="lifetime", rule="p100", threshold_nanos=CREDIT,
                   reserved_ms=NOV_19),
        FiredAlert(scope="balance", period=None, rule="a5", threshold_nanos=5 * CREDIT,
                   reserved_ms=NOV_19),
        FiredAlert(scope="balance", period=None, rule="a2", threshold_nanos=2 * CREDIT,
                   reserved_ms=NOV_19),
    ]  # fmt: skip
    day, session = layout.usage_key("d20251119"), layout.session_key("s1")
    now = NOV_19 + 1000
    hashes, ttl = expected_markers(alerts, _state(3 * CREDIT, {day: 5_000, session: 7_000}), now)
    before = layout.usage_key("d20251118") + layout.ALERTED_SUFFIX
    assert hashes == {
        day + layout.ALERTED_SUFFIX: {f"customer|day|p50|{CREDIT // 2}": "1"},
        before: {f"user:u1|day|p90|{9 * CREDIT}": "1"},
        session + layout.ALERTED_SUFFIX: {f"session:s1|lifetime|p100|{CREDIT}": "1"},
        # 3 credits left: at or below 5, so still marked; above 2, so a grant may have cleared
        # it: left out, to fire again rather than never.
        layout.ALERTED: {str(5 * CREDIT): "1"},
    }
    assert ttl == {
        day + layout.ALERTED_SUFFIX: 5_000,
        session + layout.ALERTED_SUFFIX: 7_000,
        before: NOV_19 - DAY_MS + layout.DAY_COUNTER_TTL_MS - now,
    }
