"""The Redis side of ingest: find the customers' event streams, read them in a consumer group,
claim what dead workers left pending, acknowledge, trim, and measure the lag.

Streams are per customer (so one Lua script stays atomic on Redis Cluster); they are found
through the registry set ``cg:customers`` that ``Service.upsert_customer`` adds to, seeded at
start by one SCAN for streams written before the registry existed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from sidecar.ids import is_id
from sidecar.ledger.events import parse_stream_id
from sidecar.store import layout

__all__ = ["Entry", "Lag", "StreamReader", "stream_key"]

Entry = tuple[bytes, bytes, dict[bytes, bytes]]
"""(stream key, entry id, fields) of one stream entry."""


def stream_key(customer: str) -> str:
    return layout.key(customer, layout.EVENTS)


def _chunks(items: Sequence[bytes], size: int) -> Iterable[Sequence[bytes]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _share(entries: int, streams: int) -> int:
    """COUNT per stream so that one call over ``streams`` keys returns about ``entries``."""
    return max(1, -(-entries // max(1, streams)))


def _id_after(entry_id: bytes) -> bytes:
    ms, seq = parse_stream_id(entry_id)
    return f"{ms}-{seq + 1}".encode()


class Lag(msgspec.Struct, kw_only=True):
    """Entries not yet stored and acknowledged, over every stream, and the oldest one's time."""

    streams: int = 0
    length: int = 0
    """Entries in the streams (XLEN), stored or not: trimming removes the stored ones."""
    undelivered: int = 0
    """Appended, not yet read by any worker."""
    pending: int = 0
    """Read by a worker, not yet acknowledged."""
    oldest_ms: int | None = None
    """Stream time of the oldest entry not yet acknowledged."""

    @property
    def entries(self) -> int:
        return self.undelivered + self.pending


class StreamReader:
    """One consumer of the group ``group`` on every customer stream.

    Bounds: at most ``streams_per_call`` keys per XREADGROUP; each read returns about
    ``max_entries`` (its COUNT per stream is ``max_entries`` shared by the keys of the call).
    """

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        group: str,
        consumer: str,
        streams_per_call: int = 256,
    ) -> None:
        self.client = client
        self.group = group
        self.consumer = consumer
        self.streams_per_call = streams_per_call
        self.keys: list[bytes] = []
        self._known: set[bytes] = set()
        self._turn = 0
        self._acked: set[bytes] = set()
        """Streams with entries acknowledged since the last trim: the only ones to trim."""

    async def seed_registry(self) -> int:
        """Add every existing event stream's customer to the registry (one SCAN)."""
        found = [
            layout.customer_of_key(found)
            async for found in self.client.scan_iter(
                match=stream_key("*"), count=1000, _type="STREAM"
            )
        ]
        customers = [customer for customer in found if is_id(customer)]
        if customers:
            await self.client.sadd(layout.REGISTRY_KEY, *customers)
        return len(customers)

    async def discover(self) -> int:
        """Read the registry; create the group on streams new to this reader. New keys count."""
        registry = self.client.sscan_iter(layout.REGISTRY_KEY, count=1000)
        customers = [c.decode() async for c in registry]
        fresh = [k for k in (stream_key(c).encode() for c in customers) if k not in self._known]
        await self._create_groups(fresh)
        self._known.update(fresh)
        self.keys = sorted(self._known)
        return len(fresh)

    async def _create_groups(self, keys: Sequence[bytes]) -> None:
        # From the start of the stream: the ledger must hold every movement ever appended.
        for chunk in _chunks(keys, 512):
            async with self.client.pipeline(transaction=False) as pipe:
                for key in chunk:
                    pipe.xgroup_create(key, self.group, id="0", mkstream=True)
                for result in await pipe.execute(raise_on_error=False):
                    if isinstance(result, ResponseError) and "BUSYGROUP" not in str(result):
                        raise result

    async def _read(self, starts: dict[bytes, bytes], count: int) -> list[Entry]:
        """XREADGROUP from ``starts`` (key -> ``>`` for new entries, or an id in this
        consumer's pending history)."""
        streams: dict[Any, Any] = starts
        answer: Any
        try:
            answer = await self.client.xreadgroup(self.group, self.consumer, streams, count=count)
        except ResponseError as error:
            if "NOGROUP" not in str(error):
                raise
            # Redis lost the group (flushed or replaced): create it again, from the start.
            await self._create_groups(list(starts))
            answer = await self.client.xreadgroup(self.group, self.consumer, streams, count=count)
        out: list[Entry] = []
        for key, entries in answer or []:
            for entry_id, fields in entries:
                if fields is None:  # pending, but deleted from the stream: nothing to store
                    await self.client.xack(key, self.group, entry_id)
                else:
                    out.append((key, entry_id, fields))
        return out

    async def read_new(self, max_entries: int) -> list[Entry]:
        """Entries never delivered to the group, up to about ``max_entries``, fair across
        streams: each call starts at the next chunk of keys."""
        chunks = list(_chunks(self.keys, self.streams_per_call))
        out: list[Entry] = []
        for step in range(len(chunks)):
            if len(out) >= max_entries:
                break
            chunk = chunks[(self._turn + step) % len(chunks)]
            count = _share(max_entries - len(out), len(chunk))
            out.extend(await self._read(dict.fromkeys(chunk, b">"), count))
        self._turn += 1
        return out

    async def read_own_pending(self, max_entries: int) -> list[Entry]:
        """Entries delivered to this consumer and never acknowledged (it stopped before
        acknowledging), read again from its pending history, page by page."""
        out: list[Entry] = []
        for chunk in _chunks(self.keys, self.streams_per_call):
            starts = dict.fromkeys(chunk, b"0")
            while starts and len(out) < max_entries:
                count = _share(max_entries - len(out), len(starts))
                got = await self._read(starts, count)
                out.extend(got)
                last: dict[bytes, bytes] = {}
                sizes: dict[bytes, int] = {}
                for key, entry_id, _ in got:
                    last[key] = entry_id
                    sizes[key] = sizes.get(key, 0) + 1
                starts = {k: last[k] for k in last if sizes[k] >= count}
        return out

    async def claim(self, min_idle_ms: int, max_entries: int) -> list[Entry]:
        """Take over entries another consumer left pending for ``min_idle_ms`` (XAUTOCLAIM)."""
        out: list[Entry] = []
        for chunk in _chunks(self.keys, self.streams_per_call):
            if len(out) >= max_entries:
                break
            count = _share(max_entries - len(out), len(chunk))
            async with self.client.pipeline(transaction=False) as pipe:
                for key in chunk:
                    pipe.xautoclaim(key, self.group, self.consumer, min_idle_ms, count=count)
                answers = await pipe.execute(raise_on_error=False)
            for key, answer in zip(chunk, answers, strict=True):
                if isinstance(answer, ResponseError):
                    if "NOGROUP" in str(answer):
                        continue
                    raise answer
                out.extend((key, entry_id, f) for entry_id, f in answer[1] if f is not None)
        return out

    async def ack(self, entries: Sequence[Entry]) -> None:
        """Acknowledge stored entries: they leave the group's pending list."""
        by_key: dict[bytes, list[bytes]] = {}
        for key, entry_id, _ in entries:
            by_key.setdefault(key, []).append(entry_id)
        async with self.client.pipeline(transaction=False) as pipe:
            for key, ids in by_key.items():
                pipe.xack(key, self.group, *ids)
            await pipe.execute()
        self._acked.update(by_key)

    async def _group_state(self, key: bytes) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        # In one MULTI: the group's last delivered id and its pending summary agree.
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.xinfo_groups(key)
            pipe.xpending(key, self.group)
            groups, pending = await pipe.execute()
        return groups, pending

    async def trim(self) -> int:
        """Delete entries the group has stored and acknowledged, from the streams this reader
        acknowledged in since the last trim, when the group is the stream's only reader
        (another reader's entries are never trimmed). Returns entries deleted."""
        deleted = 0
        keys, self._acked = self._acked, set()
        for key in sorted(keys):
            try:
                groups, pending = await self._group_state(key)
            except ResponseError:
                continue  # no such stream or group (yet)
            if len(groups) != 1 or groups[0]["name"].decode() != self.group:
                continue
            last = groups[0]["last-delivered-id"]
            if last == b"0-0":
                continue
            floor = _id_after(last)
            if pending["pending"]:
                floor = min(floor, pending["min"], key=parse_stream_id)
            deleted += int(await self.client.xtrim(key, minid=floor, approximate=False))
        return deleted

    async def lag(self) -> Lag:
        """Entries of every registered stream that the group has not yet stored and
        acknowledged; a stream no worker has discovered yet counts whole."""
        lag = Lag()
        async for raw in self.client.sscan_iter(layout.REGISTRY_KEY, count=1000):
            key = stream_key(raw.decode())
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.xlen(key)
                pipe.xinfo_groups(key)
                pipe.xpending(key, self.group)
                length, groups, pending = await pipe.execute(raise_on_error=False)
            if not length:
                continue
            lag.streams += 1
            lag.length += int(length)
            ours = (
                []
                if isinstance(groups, ResponseError)
                else [g for g in groups if g["name"].decode() == self.group]
            )
            if not ours or isinstance(pending, ResponseError):
                lag.undelivered += int(length)
                first = await self.client.xrange(key, count=1)
                oldest = first[0][0] if first else None
            else:
                after = _id_after(ours[0]["last-delivered-id"])
                waiting = ours[0].get("lag")
                if waiting is None:  # unknown after deletions: count them (bounded)
                    waiting = len(await self.client.xrange(key, min=after, count=100_000) or [])
                lag.undelivered += int(waiting)
                lag.pending += int(pending["pending"])
                oldest = pending["min"] if pending["pending"] else None
                if oldest is None and waiting:
                    first = await self.client.xrange(key, min=after, count=1)
                    oldest = first[0][0] if first else None
            if oldest is not None:
                ms = parse_stream_id(oldest)[0]
                lag.oldest_ms = ms if lag.oldest_ms is None else min(lag.oldest_ms, ms)
        return lag
