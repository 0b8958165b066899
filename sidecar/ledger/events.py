"""Stream entries as typed events: pure decoding, no I/O.

The store's Lua scripts append one entry per movement to the customer's stream
``cg:{c:<customer>}:events`` (fields are documented in ``sidecar/store/lua/*.lua``): ``debit``
(commit), ``expiry`` (a bucket found expired at commit), ``grant``, ``budget``, ``customer``
``audit`` (an admin change and who made it, service/audit.py) and ``alert`` (a threshold a
commit crossed). Amounts are decimal
strings of integer nano-credits; times are ms.

An entry that cannot be read becomes ``Unparsed`` with the reason: it is stored as such, so
that one bad entry never blocks the ones behind it and nothing is silently dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import msgspec

from sidecar.ids import is_id
from sidecar.reservations import reserved_ms
from sidecar.service.keys import CREDENTIAL_EVENT
from sidecar.store.layout import Layout, idem_name, shard_of_stream

__all__ = [
    "Alert",
    "Audit",
    "Budget",
    "Burn",
    "Correction",
    "Credential",
    "CustomerChange",
    "Debit",
    "Event",
    "Expiry",
    "Grant",
    "StreamId",
    "Unparsed",
    "decode_entry",
    "next_stream_id",
    "parse_stream_id",
]

Fields = dict[bytes, str]
"""An entry's fields: names as Redis sent them, values decoded (names are only looked up)."""
StreamId = tuple[int, int]
"""A stream entry id ``<ms>-<seq>`` as integers: the order of one customer's movements."""


class Burn(msgspec.Struct, frozen=True):
    grant_id: str
    credit_type: str
    amount: str


class Debit(msgspec.Struct, frozen=True, kw_only=True):
    stream: StreamId
    event_id: str
    customer: str
    team: str | None
    user: str | None
    agent: str | None
    session: str | None
    feature: str
    model: str | None
    units: str
    """JSON text of the units by kind, validated."""
    cost_nanos: int
    overrun_nanos: int
    """Cost above the hold."""
    uncovered_nanos: int
    """Cost no credit covered: the commit's overage."""
    burned: tuple[Burn, ...]
    burned_json: str
    carry_femtos: int | None
    catalog_version: str
    request_id: str
    tags: str
    """JSON text of the caller's tags, validated."""
    reserved_ms: int
    ts_ms: int
    decided_by: Literal["store", "fallback"] = "store"
    estimated: bool = False
    """The units were counted from what was delivered, not reported by the model."""
    released_nanos: int | None = None
    """What the hold had left over, for the answer a retried commit gets after a rebuild;
    None for entries appended before 0.3."""
    serve_femtos: int = 0
    """What serving the call cost us, in femto-credits (the catalog's model costs)."""


class Grant(msgspec.Struct, frozen=True, kw_only=True):
    stream: StreamId
    event_id: str
    customer: str
    grant_id: str
    credit_type: str
    amount_nanos: int
    priority: int
    expires_at_ms: int | None
    reason: str
    idempotency_key: str | None
    ts_ms: int


class Expiry(msgspec.Struct, frozen=True, kw_only=True):
    stream: StreamId
    event_id: str
    customer: str
    grant_id: str
    credit_type: str
    amount_nanos: int
    ts_ms: int


class Budget(msgspec.Struct, frozen=True, kw_only=True):
    stream: StreamId
    event_id: str
    """The script's id (``b:<field>:<ms>``) plus ``@<stream id>``: two changes in one ms differ."""
    customer: str
    scope: str
    period: str
    limit_nanos: int
    mode: str
    ts_ms: int


class CustomerChange(msgspec.Struct, frozen=True, kw_only=True):
    stream: StreamId
    event_id: str
    """The script's id (``c:<customer>:<ms>``) plus ``@<stream id>``."""
    customer: str
    plan: str
    overrides: str
    ts_ms: int


class Audit(msgspec.Struct, frozen=True, kw_only=True):
    stream: StreamId
    event_id: str
    customer: str
    actor: str
    """``operator`` or the scoped admin token's id."""
    action: str
    team: str | None
    detail: str
    """JSON text of what changed, validated."""
    ts_ms: int


class Alert(msgspec.Struct, frozen=True, kw_only=True):
    """A threshold a commit crossed (store/lua/commit.lua)."""

    stream: StreamId
    event_id: str
    customer: str
    team: str | None
    scope: str
    """``customer``, ``team:eng``, ... or ``balance``."""
    period: str | None
    rule: str
    """Compiled (engine/alerts.py): ``p80``, ``a<nanos>``."""
    threshold_nanos: int
    used_nanos: int
    """Used in the budget's period, or the balance left, after the commit."""
    limit_nanos: int | None
    mode: str | None
    reservation_id: str
    ts_ms: int


class Correction(msgspec.Struct, frozen=True, kw_only=True):
    """A refund of a committed call or a debit adjustment (store/lua/correct.lua)."""

    stream: StreamId
    event_id: str
    customer: str
    kind: Literal["refund", "adjustment"]
    corrects: str | None
    reason: str
    actor: str
    amount_nanos: int
    """Signed, from the customer's point of view: a refund adds, a debit takes."""
    moves: tuple[Burn, ...]
    """What each grant's bucket got back (or gave), signed."""
    moves_json: str
    uncovered_nanos: int | None
    """Of a refund's amount, what went back to no grant: of the call's uncovered cost. None on
    an entry from before refunds gave budgets back (and so gave no uncovered cost back)."""
    ts_ms: int


class Credential(msgspec.Struct, frozen=True, kw_only=True):
    """A proxy key's or admin token's record (service/keys.py), as issued or as revoked: what
    rebuild writes back (the token's hash, never its secret)."""

    stream: StreamId
    event_id: str
    customer: str
    namespace: str
    credential_id: str
    record: str
    """The record's JSON text, as Redis keeps it."""
    revoked: bool
    ts_ms: int


class _CredentialRecord(msgspec.Struct):
    id: str
    customer: str
    hash: str
    revoked_ms: int | None = None


class Unparsed(msgspec.Struct, frozen=True, kw_only=True):
    stream: StreamId
    customer: str
    fields: dict[str, str]
    problem: str


Parsed = Debit | Grant | Expiry | Budget | CustomerChange | Audit | Alert | Correction | Credential
Event = Parsed | Unparsed

_units = msgspec.json.Decoder(dict[str, int])
_tags = msgspec.json.Decoder(dict[str, str])
_burned = msgspec.json.Decoder(list[Burn] | dict[str, Burn])


def parse_stream_id(entry_id: bytes | str) -> StreamId:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    return int(ms), int(seq)


def next_stream_id(entry_id: bytes | str) -> bytes:
    """The smallest stream id after ``entry_id``."""
    ms, seq = parse_stream_id(entry_id)
    return f"{ms}-{seq + 1}".encode()


def _amount(fields: Fields, name: bytes) -> int:
    text = fields[name]
    if not text.lstrip("-").isdigit():
        raise ValueError(f"{name.decode()} is not an integer of nano-credits: {text!r}")
    return int(text)


def _optional(fields: Fields, name: bytes) -> str | None:
    return fields.get(name) or None


def _json(
    decoder: msgspec.json.Decoder[dict[str, int]] | msgspec.json.Decoder[dict[str, str]],
    fields: Fields,
    name: bytes,
) -> str:
    decoder.decode(fields[name])
    return fields[name]


def _debit(stream: StreamId, f: Fields) -> Debit:
    burned = _burned.decode(f[b"burned"])
    burns = tuple(burned.values()) if isinstance(burned, dict) else tuple(burned)
    for burn in burns:
        if not burn.amount.isdigit():
            raise ValueError(f"burned amount is not an integer: {burn.amount!r}")
    ts = int(f[b"ts"])
    carry = f.get(b"carry")
    return Debit(
        stream=stream,
        event_id=f[b"event_id"],
        customer=f[b"customer"],
        team=_optional(f, b"team"),
        user=_optional(f, b"user"),
        agent=_optional(f, b"agent"),
        session=_optional(f, b"session"),
        feature=f[b"feature"],
        model=_optional(f, b"model"),
        units=_json(_units, f, b"units"),
        cost_nanos=_amount(f, b"cost"),
        # Entries appended before 0.2 name the overrun "overage".
        overrun_nanos=_amount(f, b"overrun" if b"overrun" in f else b"overage"),
        uncovered_nanos=_amount(f, b"uncovered"),
        burned=burns,
        # cjson writes an empty list as {}; the ledger keeps a list.
        burned_json=msgspec.json.encode(burns).decode() if burns else "[]",
        carry_femtos=int(carry) if carry else None,
        catalog_version=f[b"catalog_version"],
        request_id=f[b"request_id"],
        tags=_json(_tags, f, b"tags"),
        reserved_ms=reserved_ms(f[b"event_id"], ts),
        ts_ms=ts,
        decided_by=_decided_by(f.get(b"decided_by", "store")),
        estimated=f.get(b"estimated") == "1",
        released_nanos=_amount(f, b"released") if b"released" in f else None,
        serve_femtos=_amount(f, b"serve_femtos") if b"serve_femtos" in f else 0,
    )


def _decided_by(text: str) -> Literal["store", "fallback"]:
    if text not in ("store", "fallback"):
        raise ValueError(f"decided_by is neither store nor fallback: {text!r}")
    return "fallback" if text == "fallback" else "store"


def _grant(stream: StreamId, f: Fields) -> Grant:
    customer = f[b"customer"]
    idem = f.get(b"idem")
    # The full key: the customer's prefix (no ':' in a customer id), then the record's name.
    marker = ":" + idem_name("g", "")
    return Grant(
        stream=stream,
        event_id=f[b"event_id"],
        customer=customer,
        grant_id=f[b"grant_id"],
        credit_type=f[b"credit_type"],
        amount_nanos=_amount(f, b"amount"),
        priority=int(f[b"priority"]),
        expires_at_ms=int(f[b"expires_at"]) if f.get(b"expires_at") else None,
        reason=f[b"reason"],
        idempotency_key=idem.partition(marker)[2] if idem and marker in idem else None,
        ts_ms=int(f[b"ts"]),
    )


def _expiry(stream: StreamId, f: Fields) -> Expiry:
    return Expiry(
        stream=stream,
        event_id=f[b"event_id"],
        customer=f[b"customer"],
        grant_id=f[b"grant_id"],
        credit_type=f[b"credit_type"],
        amount_nanos=_amount(f, b"amount"),
        ts_ms=int(f[b"ts"]),
    )


def _at(stream: StreamId) -> str:
    return f"@{stream[0]}-{stream[1]}"


def _budget(stream: StreamId, f: Fields) -> Budget:
    return Budget(
        stream=stream,
        event_id=f[b"event_id"] + _at(stream),
        customer=f[b"customer"],
        scope=f[b"scope"],
        period=f[b"period"],
        limit_nanos=_amount(f, b"limit"),
        mode=f[b"mode"],
        ts_ms=int(f[b"ts"]),
    )


def _customer(stream: StreamId, f: Fields) -> CustomerChange:
    return CustomerChange(
        stream=stream,
        event_id=f[b"event_id"] + _at(stream),
        customer=f[b"customer"],
        plan=f[b"plan"],
        overrides=f.get(b"overrides", ""),
        ts_ms=int(f[b"ts"]),
    )


def _audit(stream: StreamId, f: Fields) -> Audit:
    detail = f[b"detail"]
    msgspec.json.decode(detail, type=dict[str, object])
    return Audit(
        stream=stream,
        event_id=f[b"event_id"],
        customer=f[b"customer"],
        actor=f[b"actor"],
        action=f[b"action"],
        team=_optional(f, b"team"),
        detail=detail,
        ts_ms=int(f[b"ts"]),
    )


def _alert(stream: StreamId, f: Fields) -> Alert:
    return Alert(
        stream=stream,
        event_id=f[b"event_id"],
        customer=f[b"customer"],
        team=_optional(f, b"team"),
        scope=f[b"scope"],
        period=_optional(f, b"period"),
        rule=f[b"rule"],
        threshold_nanos=_amount(f, b"threshold"),
        used_nanos=_amount(f, b"used"),
        limit_nanos=_amount(f, b"limit") if f.get(b"limit") else None,
        mode=_optional(f, b"mode"),
        reservation_id=f[b"reservation_id"],
        ts_ms=int(f[b"ts"]),
    )


_moves = msgspec.json.Decoder(list[Burn])


def _correction(stream: StreamId, f: Fields) -> Correction:
    kind = msgspec.convert(f[b"correction"], Literal["refund", "adjustment"])
    text = f[b"moves"]
    moves = tuple(_moves.decode(text)) if text not in ("{}", "[]") else ()
    for move in moves:
        int(move.amount)  # a signed integer, or the entry is unparsed
    return Correction(
        stream=stream,
        event_id=f[b"event_id"],
        customer=f[b"customer"],
        kind=kind,
        corrects=_optional(f, b"corrects"),
        reason=f[b"reason"],
        actor=f[b"actor"],
        amount_nanos=int(f[b"amount"]),
        moves=moves,
        moves_json=msgspec.json.encode(list(moves)).decode(),
        uncovered_nanos=int(f[b"uncovered"]) if b"uncovered" in f else None,
        ts_ms=int(f[b"ts"]),
    )


def _credential(stream: StreamId, f: Fields) -> Credential:
    text = f[b"record"]
    record = msgspec.json.decode(text, type=_CredentialRecord)
    if record.customer != f[b"customer"]:
        raise ValueError(f"the record is of customer {record.customer!r}")
    return Credential(
        stream=stream,
        event_id=f[b"event_id"],
        customer=f[b"customer"],
        namespace=f[b"namespace"],
        credential_id=record.id,
        record=text,
        revoked=record.revoked_ms is not None,
        ts_ms=int(f[b"ts"]),
    )


_DECODERS: dict[str, Callable[[StreamId, Fields], Parsed]] = {
    CREDENTIAL_EVENT: _credential,
    "correction": _correction,
    "alert": _alert,
    "audit": _audit,
    "debit": _debit,
    "grant": _grant,
    "expiry": _expiry,
    "budget": _budget,
    "customer": _customer,
}


def _storable(value: bytes) -> str:
    """A field as text PostgreSQL can store: NUL, raw or JSON-escaped, becomes U+FFFD. The
    APIs refuse NUL (text.py); an entry that holds one anyway (an older sidecar) must not
    stop ingest."""
    text = value.decode(errors="replace")
    if "\x00" in text or "\\u0000" in text:
        text = text.replace("\x00", "\ufffd").replace("\\u0000", "\\ufffd")
    return text


def decode_entry(
    layout: Layout, key: bytes | str, entry_id: bytes | str, raw: dict[bytes, bytes]
) -> Event:
    """One entry of a shard's stream as a typed event, or ``Unparsed`` naming what is wrong
    with it (a customer of another shard, too)."""
    stream = parse_stream_id(entry_id)
    fields = {name: _storable(value) for name, value in raw.items()}
    owner = fields.get(b"customer", "")
    shard = shard_of_stream(key)
    decoder = _DECODERS.get(fields.get(b"kind", ""))
    if decoder is None:
        problem = f"unknown kind {fields.get(b'kind')!r}"
    else:
        try:
            event = decoder(stream, fields)
        except (KeyError, ValueError, msgspec.ValidationError, msgspec.DecodeError) as error:
            problem = f"{type(error).__name__}: {error}"
        else:
            if is_id(owner) and layout.shard(owner) == shard:
                return event
            problem = f"customer {owner!r} in the stream of shard {shard}"
    text = {name.decode(errors="replace"): value for name, value in fields.items()}
    # Without a customer, the stream names the entry: stream ids are unique per stream.
    named = owner or (key.decode() if isinstance(key, bytes) else key)
    return Unparsed(stream=stream, customer=named, fields=text, problem=problem)
