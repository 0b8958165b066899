"""What Redis must hold according to the ledger, and how it is compared: pure, table-driven."""

from __future__ import annotations

import pytest

from sidecar.catalog import Catalog
from sidecar.engine.burn import burn_key
from sidecar.ledger.reconcile import differences
from sidecar.ledger.state import (
    CustomerFact,
    GrantFact,
    LedgerFacts,
    MoneyRow,
    QuotaRow,
    RedisState,
    SessionRow,
    expected_state,
)
from sidecar.store.layout import DAY_COUNTER_TTL_MS as DAY_TTL_MS
from tests.conftest import NOON_MS

HOUR = 3_600_000


def facts(**changes: object) -> LedgerFacts:
    base: dict[str, object] = {
        "customer": "acme",
        "changes": (CustomerFact(plan="test", overrides="", ts_ms=NOON_MS),),
        "grants": (),
        "budgets": (),
        "money": (),
        "sessions": (),
        "quotas": (),
        "carry_femtos": None,
    }
    return LedgerFacts(**(base | changes))  # type: ignore[arg-type]


def grant(grant_id: str, amount: int, moved: int, **more: object) -> GrantFact:
    fields: dict[str, object] = {
        "grant_id": grant_id, "credit_type": "paid", "amount_nanos": amount, "priority": 10,
        "expires_at_ms": None, "granted_ms": NOON_MS, "reason": "admin",
        "idempotency_key": f"key-{grant_id}", "moved_nanos": moved,
    } | more  # fmt: skip
    return GrantFact(**fields)  # type: ignore[arg-type]


def test_only_unspent_buckets_are_kept_under_their_burn_key(ledger_catalog: Catalog) -> None:
    grants = (
        grant("g_1", 100, -100),  # spent
        grant("g_2", 100, -30),
        grant("g_3", 50, 0, expires_at_ms=NOON_MS - 1),
    )
    state = expected_state(facts(grants=grants), {}, ledger_catalog, NOON_MS)
    live = burn_key(10, None, NOON_MS, "g_2", "paid")
    expired = burn_key(10, NOON_MS - 1, NOON_MS, "g_3", "paid")  # not yet written off: kept
    assert state.hashes["bucket"] == {live: "70", expired: "50"}
    assert state.buckets == sorted([live, expired])
    assert state.idempotency_keys == ["key-g_1", "key-g_2", "key-g_3"]


@pytest.mark.parametrize(
    ("last_reserved_ms", "kept"),
    [(NOON_MS, True), (NOON_MS - DAY_TTL_MS + HOUR, True), (NOON_MS - DAY_TTL_MS, False)],
)
def test_day_counters_live_as_long_as_reserve_lua_keeps_them(
    ledger_catalog: Catalog, last_reserved_ms: int, kept: bool
) -> None:
    row = MoneyRow(period="d20261116", scope="team:eng", cost_nanos=5, uncovered_nanos=0,
                   last_reserved_ms=last_reserved_ms)  # fmt: skip
    state = expected_state(facts(money=(row,)), {}, ledger_catalog, NOON_MS)
    assert ("u:d20261116" in state.hashes) is kept
    if kept:
        assert state.ttl_ms["u:d20261116"] == last_reserved_ms + DAY_TTL_MS - NOON_MS


def test_quotas_count_only_metered_kinds_in_the_plan_period(ledger_catalog: Catalog) -> None:
    version = ledger_catalog.version
    rows = (
        # chat: monthly limit, counts input and output tokens
        QuotaRow(feature="chat", catalog_version=version, segment=0, day="d20261119",
                 month="m202611", kind="input_tokens", quantity=7, last_reserved_ms=NOON_MS),
        # steps: no limit in plan test, so no quota counter at all
        QuotaRow(feature="steps", catalog_version=version, segment=0, day="d20261119",
                 month="m202611", kind="requests", quantity=3, last_reserved_ms=NOON_MS),
        # tickets: a daily limit
        QuotaRow(feature="tickets", catalog_version=version, segment=0, day="d20261119",
                 month="m202611", kind="tickets_resolved", quantity=2, last_reserved_ms=NOON_MS),
    )  # fmt: skip
    sessions = (SessionRow(session="run-1", cost_nanos=9, last_reserved_ms=NOON_MS),)
    state = expected_state(facts(quotas=rows, sessions=sessions), {}, ledger_catalog, NOON_MS)
    assert state.hashes["u:m202611"] == {"q:chat|used": "7"}
    assert state.hashes["u:d20261119"] == {"q:tickets|used": "2"}
    assert state.hashes["s:run-1"] == {"used": "9"}


def test_holds_zero_counters_and_cache_markers_are_not_differences() -> None:
    expected = RedisState(
        customer="acme",
        hashes={"u:life": {"customer|used": "5"}, "customer": {"plan": "test", "overrides": ""}},
        buckets=[], ttl_ms={}, idempotency_keys=[],
    )  # fmt: skip
    actual = RedisState(
        customer="acme",
        hashes={
            "u:life": {"customer|used": "5", "customer|held": "300", "team:eng|used": "0"},
            "customer": {"plan": "test", "overrides": "", "granted_month": "m202611"},
            "balance": {"held": "300", "frac": "0"},
        },
        buckets=[], ttl_ms={}, idempotency_keys=[],
    )  # fmt: skip
    assert differences(expected, actual) == []
