"""Stream entries to typed events and ledger entries (pure), and bad entries kept, not blocking."""

from __future__ import annotations

import pytest

from sidecar.ledger.db import Pool
from sidecar.ledger.entries import entries_of
from sidecar.ledger.events import Debit, Grant, Unparsed, decode_entry
from sidecar.reservations import new_reservation_id, reserved_ms
from sidecar.store.layout import Layout
from sidecar.store.redis_store import RedisStore
from tests.conftest import Setup
from tests.ledger.conftest import Call, drain, worker

LAYOUT = Layout()
KEY = LAYOUT.stream_of("acme").encode()
RID = new_reservation_id("acme", 1_795_089_600_000)


def debit(**changes: str) -> dict[bytes, bytes]:
    fields = {
        "kind": "debit", "event_id": RID, "customer": "acme", "team": "eng", "user": "",
        "agent": "", "session": "", "feature": "chat", "model": "small",
        "units": '{"input_tokens":10}', "cost": "700", "overrun": "30", "uncovered": "200",
        "burned": '[{"grant_id":"g_1","credit_type":"paid","amount":"500"}]',
        "catalog_version": "v1", "request_id": "req-1", "tags": "{}", "carry": "12",
        "ts": "1795089601000",
    } | changes  # fmt: skip
    return {k.encode(): v.encode() for k, v in fields.items()}


def test_a_debit_decodes_with_its_attribution_and_the_hold_time() -> None:
    event = decode_entry(LAYOUT, KEY, b"1795089601001-3", debit())
    assert isinstance(event, Debit)
    assert (event.stream, event.customer, event.team, event.user) == (
        (1_795_089_601_001, 3), "acme", "eng", None
    )  # fmt: skip
    assert (event.cost_nanos, event.uncovered_nanos, event.carry_femtos) == (700, 200, 12)
    assert event.overrun_nanos == 30
    assert event.reserved_ms == 1_795_089_600_000  # from the reservation id's ULID
    assert event.ts_ms == 1_795_089_601_000
    assert [(e.kind, e.credit_type, e.amount_nanos) for e in entries_of(event)] == [
        ("debit", "paid", -500),
        ("overage", None, -200),
    ]


def test_an_entry_appended_before_0_2_names_its_overrun_overage() -> None:
    raw = debit()
    raw[b"overage"] = raw.pop(b"overrun")
    event = decode_entry(LAYOUT, KEY, b"1-0", raw)
    assert isinstance(event, Debit)
    assert event.overrun_nanos == 30


def test_cjson_empty_burned_list_and_missing_carry_are_read() -> None:
    raw = debit(burned="{}", uncovered="0")
    del raw[b"carry"]
    event = decode_entry(LAYOUT, KEY, b"1-0", raw)
    assert isinstance(event, Debit)
    assert (event.burned, event.burned_json, event.carry_femtos) == ((), "[]", None)
    assert entries_of(event) == []


def test_a_grant_names_its_idempotency_key_and_expiry() -> None:
    fields = {
        b"kind": b"grant", b"event_id": b"g:g_1", b"customer": b"acme", b"grant_id": b"g_1",
        b"credit_type": b"paid", b"amount": b"10", b"priority": b"10", b"expires_at": b"",
        b"reason": b"admin", b"idem": LAYOUT.idem_key("acme", "g", "key-1").encode(), b"ts": b"5",
    }  # fmt: skip
    event = decode_entry(LAYOUT, KEY, b"5-0", fields)
    assert isinstance(event, Grant)
    assert (event.idempotency_key, event.expires_at_ms, event.amount_nanos) == ("key-1", None, 10)
    assert [(e.kind, e.amount_nanos) for e in entries_of(event)] == [("grant", 10)]


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (debit(kind="bonus"), "unknown kind"),
        (debit(cost="1.5"), "not an integer"),
        (debit(units='{"input_tokens": 1'), "DecodeError"),
        (debit(units='{"input_tokens": "ten"}'), "ValidationError"),
        (debit(customer="globex"), "customer 'globex' in the stream of shard"),
        ({b"kind": b"debit"}, "KeyError"),
    ],
)
def test_a_bad_entry_becomes_unparsed_with_its_reason(
    raw: dict[bytes, bytes], problem: str
) -> None:
    event = decode_entry(LAYOUT, KEY, b"9-0", raw)
    assert isinstance(event, Unparsed)
    assert problem in event.problem
    assert event.fields["kind"] == raw[b"kind"].decode()


def test_the_hold_time_comes_from_the_reservation_id_only() -> None:
    for ms in (0, 1, 1_795_089_600_000, 2**48 - 1):
        assert reserved_ms(new_reservation_id("acme", ms), -1) == ms
    assert reserved_ms("r_NOT-A-ULID_acme", -1) == -1


@pytest.mark.redis
@pytest.mark.postgres
async def test_a_bad_entry_is_kept_and_never_blocks_the_ones_behind_it(
    store: RedisStore, pool: Pool, setup_customer: Setup, call: Call
) -> None:
    await setup_customer()
    await store.client.xadd(KEY, {"kind": "bonus", "amount": "5"})
    await call(units={"input_tokens": 10})
    ledger = worker(store, pool)
    assert await drain(ledger) == 5  # customer, its audit entry, plan grant, the bad one, the debit
    assert ledger.unparsed == 1
    async with pool.acquire() as db:
        bad = await db.fetchrow("SELECT fields, problem FROM unparsed_events")
        assert await db.fetchval("SELECT count(*) FROM usage_events") == 1
    assert bad is not None
    assert bad["problem"] == "unknown kind 'bonus'"
    assert bad["fields"] == '{"kind": "bonus", "amount": "5"}'
