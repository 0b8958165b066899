"""Burn order: priority, then earliest expiry (none last), then oldest; the key is the order."""

from __future__ import annotations

from itertools import permutations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.catalog.model import MAX_PRIORITY
from sidecar.engine import burn_key, parse_burn_key

NOON_MS = 1_795_089_600_000  # 2026-11-19T12:00:00Z
DAY_MS = 86_400_000

# A bucket: (grant id, priority, expires_at_ms or None, created_ms).
Bucket = tuple[str, int, int | None, int]

# Each row lists buckets in the order they must burn.
ORDERS: list[tuple[str, list[Bucket]]] = [
    (
        "lower priority first, compared as numbers",
        [("p0", 0, None, NOON_MS), ("p9", 9, None, NOON_MS), ("p10", 10, None, NOON_MS)],
    ),
    (
        "priority wins over expiry and age",
        [
            ("promo", 1, None, NOON_MS),
            ("included", 5, NOON_MS + DAY_MS, NOON_MS - DAY_MS),
        ],
    ),
    (
        "same priority: earliest expiry first, no expiry last",
        [
            ("soon", 5, NOON_MS + 1, NOON_MS),
            ("later", 5, NOON_MS + 30 * DAY_MS, NOON_MS - DAY_MS),
            ("never", 5, None, NOON_MS - 2 * DAY_MS),
        ],
    ),
    (
        "expiries of different magnitude compare as numbers",
        [("early", 5, 999, NOON_MS), ("late", 5, NOON_MS, NOON_MS)],
    ),
    (
        "same priority and expiry: oldest first",
        [
            ("oldest", 5, NOON_MS + DAY_MS, 1),
            ("older", 5, NOON_MS + DAY_MS, NOON_MS - DAY_MS),
            ("newest", 5, NOON_MS + DAY_MS, NOON_MS),
        ],
    ),
    (
        "no expiry, same priority: oldest first",
        [("a", 10, None, NOON_MS - 1), ("b", 10, None, NOON_MS)],
    ),
    (
        "the whole priority range keeps its order",
        [("min", 0, None, NOON_MS), ("mid", 999, None, NOON_MS), ("max", MAX_PRIORITY, 1, 0)],
    ),
]


def key_of(bucket: Bucket) -> str:
    grant_id, priority, expires_at_ms, created_ms = bucket
    return burn_key(priority, expires_at_ms, created_ms, grant_id, "paid")


@pytest.mark.parametrize(("case", "order"), ORDERS, ids=[row[0] for row in ORDERS])
def test_sorted_keys_are_the_burn_order(case: str, order: list[Bucket]) -> None:
    expected = [bucket[0] for bucket in order]
    for arrangement in permutations(order):
        keys = sorted(key_of(bucket) for bucket in arrangement)
        assert [parse_burn_key(key)[4] for key in keys] == expected, case


buckets = st.tuples(
    st.text(alphabet="abcdef0123456789", min_size=1, max_size=8),
    st.integers(min_value=0, max_value=MAX_PRIORITY),
    st.one_of(st.none(), st.integers(min_value=0, max_value=10**15 - 2)),
    st.integers(min_value=0, max_value=10**15 - 1),
)


@given(st.lists(buckets, max_size=30, unique_by=lambda b: b[0]))
def test_key_order_matches_the_rule(drawn: list[Bucket]) -> None:
    def rule(bucket: Bucket) -> tuple[int, bool, int, int]:
        _, priority, expires_at_ms, created_ms = bucket
        return (priority, expires_at_ms is None, expires_at_ms or 0, created_ms)

    by_rule = sorted(drawn, key=lambda b: (rule(b), b[0]))
    by_key = sorted(drawn, key=key_of)
    assert [rule(b) for b in by_key] == [rule(b) for b in by_rule]


@pytest.mark.parametrize(
    "parts",
    [
        (0, None, 0, "paid", "g_0"),
        (5, NOON_MS + DAY_MS, NOON_MS, "included", "g_3f2a9c"),
        (MAX_PRIORITY, 10**15 - 2, 10**15 - 1, "frontier", "g_x"),
    ],
)
def test_parse_burn_key_round_trips(parts: tuple[int, int | None, int, str, str]) -> None:
    priority, expires_at_ms, created_ms, credit_type, grant_id = parts
    key = burn_key(priority, expires_at_ms, created_ms, grant_id, credit_type)
    assert parse_burn_key(key) == parts


@given(buckets, st.sampled_from(["paid", "promo", "frontier"]))
def test_parse_burn_key_round_trips_any_bucket(bucket: Bucket, credit_type: str) -> None:
    grant_id, priority, expires_at_ms, created_ms = bucket
    key = burn_key(priority, expires_at_ms, created_ms, grant_id, credit_type)
    assert parse_burn_key(key) == (priority, expires_at_ms, created_ms, credit_type, grant_id)
