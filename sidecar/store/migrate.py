"""``creditgate store migrate``: move a deployment from the layout before shards
(``cg:{c:<customer>}:<name>``, one event stream per customer, the registry ``cg:customers``) to
the shard layout (store/layout.py), with the sidecars and the ledger stopped.

Every key of a customer moves under its new name with its remaining lifetime, and the hold records,
which name the counters they touched, are rewritten to the new names: money, holds in flight and
idempotency records survive. Reserve idempotency records move into their window's hash
(layout.RESERVES_PREFIX); expired holds stay for a late commit. The records of holds already
committed or released are not moved: a retry of such a commit or release after the migration
answers 404 (the call was settled before it; the ledger has it). Stream entries the ledger has not
read yet are appended to the shard's stream (they get new stream ids; nothing has stored them under
the old ones); entries it has stored are in the ledger already and are not moved. Entries it has
read and not acknowledged make the migration refuse to start: let the previous ledger finish first.
Each customer moves in one MULTI, so a migration stopped half-way is run again and finishes; the
layout's record is written last, which is what lets the new sidecars start.
"""

from __future__ import annotations

from typing import Any

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from sidecar.errors import SettingsError
from sidecar.ledger.events import next_stream_id
from sidecar.reservations import reserved_ms
from sidecar.store import layout
from sidecar.store.layout import Layout
from sidecar.store.topology import Client

__all__ = ["Moved", "legacy_key", "migrate"]


class Moved(msgspec.Struct, kw_only=True):
    customers: int = 0
    keys: int = 0
    entries: int = 0
    """Stream entries not yet read by the ledger, appended to their shard's stream."""


_REWRITTEN = ("events", layout.HOLDS, layout.HOLD_EXPIRY, "resolved")
"""Legacy keys that are not moved as they are: rewritten below, or appended (events)."""


def legacy_key(customer: str, name: str) -> str:
    """A key of the layout before shards."""
    return f"cg:{{c:{customer}}}:{name}"


async def _unread(client: aioredis.Redis, stream: str, group: str) -> list[Any]:
    """Entries of a legacy stream that ``group`` has not read; refuses if it has entries read
    and not acknowledged."""
    try:
        groups = await client.xinfo_groups(stream)
    except ResponseError:
        return []  # no stream
    floor = "-"
    for info in groups:
        if info["name"].decode() == group:
            if info["pending"]:
                raise SettingsError(
                    f"{stream}: {info['pending']} entries read by the ledger's group {group!r} "
                    "and not acknowledged; let the ledger of the previous release store them "
                    "(stop it gracefully), then migrate again"
                )
            floor = next_stream_id(info["last-delivered-id"]).decode()
    entries: Any = await client.xrange(stream, min=floor)
    return list(entries)


def _holds(
    records: dict[str, Any],
    resolved_at: dict[bytes, float],
    answers: dict[str, tuple[Any, int]],
) -> tuple[dict[Any, Any], dict[str, float], dict[int, tuple[dict[Any, Any], int]]]:
    """The hold records in the shard layout's form: holds in flight (with the window of their
    reserve record and what their first answer said remained) and expired holds, their
    expiry index, and the reserve index by window."""
    first = {}
    index: dict[int, tuple[dict[Any, Any], int]] = {}
    for key, (raw, ttl) in answers.items():
        if raw is None or ttl <= 0:
            continue
        answer = msgspec.json.decode(raw)
        rid, window = answer["reservation_id"], _window(answer["reservation_id"])
        first[rid] = answer
        fields, longest = index.setdefault(window, ({}, ttl))
        fields[key] = f"{rid}|{answer['held']}"
        index[window] = (fields, max(longest, ttl))
    holds: dict[Any, Any] = {}
    expiry: dict[str, float] = {}
    for rid, rec in records.items():
        if rec["s"] == "held":
            rec["b"] = _window(rid)
            answer = first.get(rid, {})
            rec["rem"] = answer.get("remaining")
            if answer.get("soft_limits_hit"):
                rec["soft"] = answer["soft_limits_hit"]
            expiry[rid] = rec["x"]
        elif rec["s"] == "expired":
            rec.pop("h", None)
            rec["b"] = _window(rid)
            expiry[rid] = resolved_at.get(rid.encode(), rec["x"]) + layout.EXPIRED_RETAIN_MS
        else:
            continue  # committed or released: settled, and in the ledger
        holds[rid] = msgspec.json.encode({k: v for k, v in rec.items() if v is not None})
    return holds, expiry, index


def _window(rid: str) -> int:
    return layout.record_window(reserved_ms(rid, 0))


async def migrate(client: Client, keys: Layout, *, group: str = "ledger") -> Moved:
    """Move every customer of ``cg:customers`` into ``keys``' layout; record the layout."""
    if not isinstance(client, aioredis.Redis):
        raise SettingsError("--redis: the layout before shards never ran on a cluster")
    recorded = await client.hget(keys.layout_key, "shards")
    if recorded is not None and int(recorded) != keys.shards:
        raise SettingsError(f"--shards: this Redis is laid out in {int(recorded)} shards")
    members: Any = await client.smembers(keys.legacy_registry_key)
    customers = sorted(member.decode() for member in members)
    streams = {c: await _unread(client, legacy_key(c, "events"), group) for c in customers}
    moved = Moved()
    for customer in customers:
        moved.customers += 1
        old: list[Any] = [
            k async for k in client.scan_iter(match=legacy_key(customer, "*"), count=1000)
        ]
        before, after = legacy_key(customer, ""), keys.key(customer, "")
        special = {legacy_key(customer, name).encode() for name in _REWRITTEN}
        reserves = legacy_key(customer, "idem:r:").encode()
        dumps, answers = [], {}  # answers: idempotency key -> (first answer, ms to live)
        for key in old:
            if key.startswith(reserves):
                answers[key.removeprefix(reserves).decode()] = (
                    await client.get(key),
                    await client.pttl(key),
                )
            elif key not in special and (payload := await client.dump(key)) is not None:
                dumps.append((key.decode().removeprefix(before), payload, await client.pttl(key)))
        raw_holds: Any = await client.hgetall(legacy_key(customer, layout.HOLDS))
        resolved_at: Any = await client.zrange(
            legacy_key(customer, "resolved"), 0, -1, withscores=True
        )
        records = {
            rid.decode(): msgspec.json.decode(record.decode().replace(before, after))
            for rid, record in raw_holds.items()
        }
        holds, expiry, index = _holds(records, dict(resolved_at), answers)
        async with client.pipeline(transaction=True) as pipe:
            for name, payload, ttl in dumps:
                pipe.restore(keys.key(customer, name), max(ttl, 0), payload, replace=True)
            for name in (layout.HOLDS, layout.HOLD_EXPIRY):
                pipe.delete(keys.key(customer, name))
            if holds:
                pipe.hset(keys.key(customer, layout.HOLDS), mapping=holds)
                pipe.zadd(keys.key(customer, layout.HOLD_EXPIRY), expiry)
            for window, (fields, ttl) in index.items():
                pipe.hset(keys.key(customer, layout.reserves_key(window)), mapping=fields)
                pipe.pexpire(keys.key(customer, layout.reserves_key(window)), ttl)
            for _, fields in streams[customer]:
                pipe.xadd(keys.stream_of(customer), fields)
            pipe.sadd(keys.shard_key(keys.shard(customer), layout.CUSTOMERS), customer)
            if old:
                pipe.delete(*old)
            pipe.srem(keys.legacy_registry_key, customer)
            await pipe.execute()
        moved.keys += len(dumps) + bool(holds) + len(index)
        moved.entries += len(streams[customer])
    await client.hset(keys.layout_key, "shards", keys.shards)
    return moved
