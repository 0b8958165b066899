"""The Redis side of ingest: read the shards' event streams in a consumer group, claim what
dead workers left pending, acknowledge, trim, and measure the lag.

There is one stream per shard (store/layout.py), so the work here is O(shards), never
O(customers). A reader reads the shards assigned to it (ledger/workers.py splits them between
workers); on a Redis Cluster every command names one stream, and a pipeline sends each node
its commands in one round trip.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec
from redis.exceptions import ResponseError

from sidecar.ledger.events import next_stream_id, parse_stream_id
from sidecar.store.layout import Layout
from sidecar.store.topology import Client, is_cluster

__all__ = ["Entry", "Lag", "StreamReader"]

Entry = tuple[bytes, bytes, dict[bytes, bytes]]
"""(stream key, entry id, fields) of one stream entry."""


def _chunks(items: Sequence[bytes], size: int) -> Iterable[Sequence[bytes]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _share(entries: int, streams: int) -> int:
    """COUNT per stream so that one call over ``streams`` keys returns about ``entries``."""
    return max(1, -(-entries // max(1, streams)))


def _nogroup(answer: object) -> bool:
    return isinstance(answer, ResponseError) and "NOGROUP" in str(answer)


class Lag(msgspec.Struct, kw_only=True):
    """Entries not yet stored and acknowledged, over every stream, and the oldest one's time."""

    streams: int = 0
    """Streams with entries."""
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
    """One consumer of the group ``group`` on the shards' streams assigned to it (all of them
    until ``assign``).

    Bounds: at most ``streams_per_call`` keys per XREADGROUP on one node; each read returns
    about ``max_entries`` (its COUNT per stream is ``max_entries`` shared by the keys).
    """

    def __init__(
        self,
        client: Client,
        layout: Layout,
        *,
        group: str,
        consumer: str,
        streams_per_call: int = 256,
    ) -> None:
        self.client = client
        self.layout = layout
        self.group = group
        self.consumer = consumer
        self.streams_per_call = streams_per_call
        self.cluster = is_cluster(client)
        self.all_keys = [key.encode() for key in layout.streams()]
        self.keys = list(self.all_keys)
        self._turn = 0
        self._acked: set[bytes] = set()
        """Streams with entries acknowledged since the last trim: the only ones to trim."""

    async def start(self) -> None:
        """Create the group on every shard's stream (once per deployment; cheap after)."""
        await self._create_groups(self.all_keys)

    def assign(self, shards: Sequence[int]) -> None:
        """Read only these shards from now on."""
        self.keys = [self.all_keys[shard] for shard in shards]

    async def _pipeline(self, commands: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        """Run ``(method, args)`` commands in one pipeline (per node on a cluster); errors
        come back as values."""
        async with self.client.pipeline(transaction=False) as pipe:
            for method, args in commands:
                getattr(pipe, method)(*args)
            return list(await pipe.execute(raise_on_error=False))

    async def _create_groups(self, keys: Sequence[bytes]) -> None:
        # From the start of the stream: the ledger must hold every movement ever appended.
        for chunk in _chunks(keys, 512):
            commands = [("xgroup_create", (key, self.group, "0", True)) for key in chunk]
            for result in await self._pipeline(commands):
                if isinstance(result, ResponseError) and "BUSYGROUP" not in str(result):
                    raise result

    def _calls(self, starts: dict[bytes, bytes]) -> list[dict[bytes, bytes]]:
        """The XREADGROUP calls for ``starts``: one per stream on a cluster (each stream has
        a slot of its own), else one for all."""
        if self.cluster:
            return [{key: start} for key, start in starts.items()]
        return [starts]

    async def _read(self, starts: dict[bytes, bytes], count: int) -> list[Entry]:
        """XREADGROUP from ``starts`` (key -> ``>`` for new entries, or an id in this
        consumer's pending history)."""
        calls = self._calls(starts)
        commands = [("xreadgroup", (self.group, self.consumer, call, count)) for call in calls]
        answers = await self._pipeline(commands)
        lost = [call for call, answer in zip(calls, answers, strict=True) if _nogroup(answer)]
        if lost:  # Redis lost the group (flushed or replaced): create it again, from the start
            await self._create_groups([key for call in lost for key in call])
            retry = [("xreadgroup", (self.group, self.consumer, call, count)) for call in lost]
            answers = [a for a in answers if not _nogroup(a)] + await self._pipeline(retry)
        out: list[Entry] = []
        gone: list[tuple[str, Sequence[Any]]] = []
        for answer in answers:
            if isinstance(answer, BaseException):
                raise answer
            for key, entries in answer or []:
                for entry_id, fields in entries:
                    if fields is None:  # pending, but deleted from the stream: nothing to store
                        gone.append(("xack", (key, self.group, entry_id)))
                    else:
                        out.append((key, entry_id, fields))
        if gone:
            await self._pipeline(gone)
        return out

    async def read_new(self, max_entries: int) -> list[Entry]:
        """Entries never delivered to the group, up to about ``max_entries``, fair across
        streams: each call starts at the next chunk of keys, and the streams that filled
        their share are read again with the share left (traffic is seldom even)."""
        if not self.keys:
            return []
        chunks = list(_chunks(self.keys, self.streams_per_call))
        out: list[Entry] = []
        for step in range(len(chunks)):
            keys = chunks[(self._turn + step) % len(chunks)]
            while keys and len(out) < max_entries:
                count = _share(max_entries - len(out), len(keys))
                got = await self._read(dict.fromkeys(keys, b">"), count)
                out.extend(got)
                sizes = Counter(key for key, _, _ in got)
                keys = [key for key in keys if sizes[key] >= count]
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

    async def _pending_of_others(self, live: Sequence[str] | None) -> dict[bytes, bool]:
        """Assigned streams where consumers other than this one hold pending entries: the only
        ones worth a claim (one pipelined XPENDING summary per stream), each with whether all
        of those consumers are gone (not in ``live``; None: no one knows who is live)."""
        answers = await self._pipeline([("xpending", (key, self.group)) for key in self.keys])
        mine, alive = self.consumer.encode(), {name.encode() for name in live or ()}
        out = {}
        for key, summary in zip(self.keys, answers, strict=True):
            if not isinstance(summary, dict):
                continue
            others = [c["name"] for c in summary.get("consumers") or [] if c["name"] != mine]
            if others:
                out[key] = live is not None and not alive.intersection(others)
        return out

    async def claim(
        self, min_idle_ms: int, max_entries: int, *, live: Sequence[str] | None = None
    ) -> list[Entry]:
        """Take over entries other consumers left pending (XAUTOCLAIM): at once on streams
        where every such consumer is gone from ``live``, else once idle ``min_idle_ms``."""
        streams = await self._pending_of_others(live)
        keys = list(streams)
        out: list[Entry] = []
        for chunk in _chunks(keys, self.streams_per_call):
            if len(out) >= max_entries:
                break
            count = _share(max_entries - len(out), len(chunk))
            commands = [
                (
                    "xautoclaim",
                    (
                        key,
                        self.group,
                        self.consumer,
                        0 if streams[key] else min_idle_ms,
                        "0-0",
                        count,
                    ),
                )
                for key in chunk
            ]
            for key, answer in zip(chunk, await self._pipeline(commands), strict=True):
                if _nogroup(answer):
                    continue
                if isinstance(answer, BaseException):
                    raise answer
                out.extend((key, entry_id, f) for entry_id, f in answer[1] if f is not None)
        return out

    async def ack(self, entries: Sequence[Entry]) -> None:
        """Acknowledge stored entries: they leave the group's pending list."""
        by_key: dict[bytes, list[bytes]] = {}
        for key, entry_id, _ in entries:
            by_key.setdefault(key, []).append(entry_id)
        for answer in await self._pipeline(
            [("xack", (key, self.group, *ids)) for key, ids in by_key.items()]
        ):
            if isinstance(answer, BaseException):
                raise answer
        self._acked.update(by_key)

    async def _group_states(self, keys: Sequence[bytes]) -> list[tuple[Any, Any, Any]]:
        """(XLEN, XINFO GROUPS, XPENDING summary) of each stream, errors as values. The group
        is read before its pending summary, on the same connection: an entry delivered in
        between is newer than the last delivered id read."""
        commands: list[tuple[str, Sequence[Any]]] = []
        for key in keys:
            commands += [
                ("xlen", (key,)),
                ("xinfo_groups", (key,)),
                ("xpending", (key, self.group)),
            ]
        answers = await self._pipeline(commands)
        return [(answers[i], answers[i + 1], answers[i + 2]) for i in range(0, len(answers), 3)]

    def _ours(self, groups: Any) -> dict[str, Any] | None:
        if isinstance(groups, BaseException):
            return None
        found = [g for g in groups if g["name"].decode() == self.group]
        return found[0] if found else None

    async def trim(self) -> int:
        """Delete entries the group has stored and acknowledged, from the streams this reader
        acknowledged in since the last trim, when the group is the stream's only reader
        (another reader's entries are never trimmed). Returns entries deleted."""
        keys, self._acked = sorted(self._acked), set()
        trims: list[tuple[str, Sequence[Any]]] = []
        for key, (_, groups, pending) in zip(keys, await self._group_states(keys), strict=True):
            ours = self._ours(groups)
            if ours is None or len(groups) != 1 or isinstance(pending, BaseException):
                continue
            last = ours["last-delivered-id"]
            if last == b"0-0":
                continue
            floor = next_stream_id(last)
            if pending["pending"]:
                floor = min(floor, pending["min"], key=parse_stream_id)
            trims.append(("xtrim", (key, None, False, floor)))
        return sum(int(n) for n in await self._pipeline(trims) if isinstance(n, int))

    async def lag(self) -> Lag:
        """Entries of every shard's stream that the group has not yet stored and
        acknowledged: one pipelined round over the shards (a few more for oldest entries)."""
        lag = Lag()
        oldest: list[bytes] = []
        firsts: list[tuple[str, Sequence[Any]]] = []
        states = await self._group_states(self.all_keys)
        for key, (length, groups, pending) in zip(self.all_keys, states, strict=True):
            if isinstance(length, BaseException):
                raise length
            if not length:
                continue
            lag.streams += 1
            lag.length += int(length)
            ours = self._ours(groups)
            if ours is None or isinstance(pending, BaseException):
                lag.undelivered += int(length)
                firsts.append(("xrange", (key, "-", "+", 1)))
                continue
            after = next_stream_id(ours["last-delivered-id"])
            waiting = ours.get("lag")
            if waiting is None:  # unknown after deletions: count them (bounded)
                waiting = len(await self.client.xrange(key, min=after, count=100_000) or [])
            lag.undelivered += int(waiting)
            lag.pending += int(pending["pending"])
            if pending["pending"]:
                oldest.append(pending["min"])
            elif waiting:
                firsts.append(("xrange", (key, after, "+", 1)))
        for answer in await self._pipeline(firsts):
            if isinstance(answer, list) and answer:
                oldest.append(answer[0][0])
        if oldest:
            lag.oldest_ms = min(parse_stream_id(entry_id)[0] for entry_id in oldest)
        return lag
