"""Redis losing its state is detected, not absorbed: generations of Redis state, as Redis and
the ledger each record them.

A deployment's Redis state has a generation id: ``cg:layout``'s ``generation``, and a marker
under the same id on every shard (store/layout.py, GENERATION), without which no script
decides anything on the shard (``LOSTSTATE``: the sidecar answers ``store_unavailable`` and
its fallback policy applies). The ledger records in ``store_generations`` each generation it
has seen. A Redis that restarted empty, was flushed, or had a shard's node replaced, no longer
holds the generation the ledger recorded; the ledger then *fences* it (deletes every marker,
and sets ``cg:layout``'s ``lost``, so that a process starting on it marks nothing) and records
the loss, naming the last event it had stored. A Redis rolled back to an older copy of the
same generation (a backup restored, a replica that was behind taking over) keeps its markers;
each check of the ledger therefore increments an *epoch* on every shard (store/layout.py,
EPOCH), and a shard whose epoch comes back no higher than the one the ledger last got lost
writes it had acknowledged: the same loss. Only ``creditgate ledger rebuild --all``, which
writes back the ledger's state, starts a new generation. ``reconcile`` reports the loss.

``judge`` and ``Epochs`` decide, purely; ``read_redis``, ``latest`` and ``record`` do the I/O.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal

import msgspec

from sidecar.ledger.db import Connection
from sidecar.ledger.locks import xact_lock
from sidecar.store.layout import EPOCH, GENERATION, LAYOUT_LOST, LAYOUT_MARKED, Layout
from sidecar.store.topology import Client, mark_generation, new_generation, write_markers

__all__ = [
    "Epochs",
    "Found",
    "Recorded",
    "Verdict",
    "judge",
    "last_event",
    "latest",
    "read_redis",
    "record",
    "renew",
    "status",
    "watch_once",
]

log = logging.getLogger(__name__)

LOCK = 0x63675F67656E  # "cg_gen"
"""PostgreSQL advisory lock: one check or renewal at a time, across ledger pods and the CLI,
so that a check never judges a Redis half-way through a rebuild's renewal."""


async def _exclusive(connection: Connection) -> None:
    """Within a transaction: wait for the generation lock (released at its end)."""
    await xact_lock(connection, LOCK)


State = Literal["seen", "lost", "rebuilt"]


class Recorded(msgspec.Struct, frozen=True, kw_only=True):
    """The ledger's latest record of Redis's generation."""

    generation: str
    state: State
    detail: str


class Found(msgspec.Struct, frozen=True, kw_only=True):
    """What Redis holds: its generation, the fence's reason, the shards without its marker,
    and the shards whose epoch went back (``Epochs``)."""

    generation: str | None
    lost: str | None
    unmarked: tuple[int, ...]
    rolled_back: tuple[int, ...] = ()


class Epochs:
    """The epoch this ledger last got from each shard, within one generation."""

    def __init__(self) -> None:
        self.generation: str | None = None
        self.last: dict[int, int] = {}

    def advance(self, generation: str | None, values: Sequence[int]) -> tuple[int, ...]:
        """Take the epochs just incremented; the shards whose value is not above the last one
        (none on the first call of a generation: a rebuild starts a new one)."""
        if generation != self.generation:
            self.generation, self.last = generation, {}
        back = tuple(s for s, value in enumerate(values) if value <= self.last.get(s, 0))
        self.last = dict(enumerate(values))
        return back


class Verdict(msgspec.Struct, frozen=True, kw_only=True):
    action: Literal["ok", "mark", "adopt", "lose", "fenced"]
    """ok: Redis holds the generation the ledger knows; mark: a new deployment, no generation
    yet; adopt: record the generation found; lose: Redis lost state, fence it and record it;
    fenced: it is fenced already, until a rebuild."""
    why: str = ""


def _shards(shards: tuple[int, ...]) -> str:
    listed = ", ".join(str(s) for s in shards[:8])
    return listed + (f" and {len(shards) - 8} more" if len(shards) > 8 else "")


def judge(recorded: Recorded | None, found: Found) -> Verdict:
    """What to do about the generation ``found`` in Redis, given the ledger's ``recorded``."""
    if recorded is not None and recorded.state == "lost":
        return Verdict(action="fenced", why=recorded.detail)
    if found.lost is not None:
        return Verdict(action="fenced" if recorded is None else "lose", why=found.lost)
    if recorded is None:
        if found.generation is None:
            return Verdict(action="mark")
        if found.unmarked:
            return Verdict(action="ok", why="markers still being written")
        return Verdict(action="adopt")
    if found.generation is None:
        return Verdict(action="lose", why="Redis holds no generation (restarted empty, or flushed)")
    if found.generation != recorded.generation:
        return Verdict(
            action="lose",
            why=f"Redis holds generation {found.generation}, not {recorded.generation} "
            "(restarted empty and marked anew, or replaced)",
        )
    if found.unmarked:
        return Verdict(
            action="lose",
            why=f"shards {_shards(found.unmarked)} have no generation marker (a node "
            "restarted empty, or flushed)",
        )
    if found.rolled_back:
        return Verdict(
            action="lose",
            why=f"shards {_shards(found.rolled_back)} lost writes they had acknowledged "
            "(rolled back to an older copy, or a replica that was behind took over)",
        )
    return Verdict(action="ok")


async def read_redis(client: Client, layout: Layout, epochs: Epochs | None = None) -> Found:
    """The generation, the fence and each shard's marker: one pipelined round; with
    ``epochs``, each shard's epoch incremented in the same round."""
    answer: Any = await client.hmget(layout.layout_key, "generation", LAYOUT_LOST)
    generation, lost = answer
    shards = range(layout.shards)
    async with client.pipeline(transaction=False) as pipe:
        for shard in shards:
            pipe.get(layout.shard_key(shard, GENERATION))
        for shard in shards if epochs is not None else ():
            pipe.incr(layout.shard_key(shard, EPOCH))
        replies = await pipe.execute()
    markers, values = replies[: layout.shards], replies[layout.shards :]
    name = generation.decode() if generation is not None else None
    return Found(
        generation=name,
        lost=lost.decode() if lost is not None else None,
        unmarked=tuple(s for s, m in enumerate(markers) if m is None or m != generation),
        rolled_back=epochs.advance(name, values) if epochs is not None else (),
    )


async def latest(connection: Connection) -> Recorded | None:
    row = await connection.fetchrow(
        "SELECT generation, state, detail FROM store_generations ORDER BY entry_id DESC LIMIT 1"
    )
    return None if row is None else Recorded(**dict(row))


async def record(
    connection: Connection, generation: str, state: State, shards: int, detail: str = ""
) -> None:
    await connection.execute(
        "INSERT INTO store_generations (generation, state, shards, detail) "
        "VALUES ($1, $2, $3, $4)",
        generation, state, shards, detail,
    )  # fmt: skip


async def last_event(connection: Connection) -> str:
    """The last event the ledger stored, as the place a loss is named from."""
    row = await connection.fetchrow(
        """
        SELECT event_id, customer, ts, recorded_at FROM (
            (SELECT event_id, customer, ts, recorded_at FROM usage_events
             ORDER BY recorded_at DESC LIMIT 1)
            UNION ALL
            (SELECT event_id, customer, ts, recorded_at FROM ledger_entries
             ORDER BY entry_id DESC LIMIT 1)
            UNION ALL
            (SELECT event_id, customer, ts, recorded_at FROM budget_changes
             ORDER BY recorded_at DESC LIMIT 1)
            UNION ALL
            (SELECT event_id, customer, ts, recorded_at FROM customer_changes
             ORDER BY recorded_at DESC LIMIT 1)
        ) AS last ORDER BY recorded_at DESC LIMIT 1
        """
    )
    if row is None:
        return "before any event"
    return f"after event {row['event_id']} (customer {row['customer']}, at {row['ts'].isoformat()})"


async def _fence(client: Client, layout: Layout, detail: str) -> None:
    """Stop every script on this Redis until a rebuild: the fence first (no process marks a
    fenced Redis), then every marker."""
    await client.hset(layout.layout_key, mapping={"shards": layout.shards, LAYOUT_LOST: detail})
    await client.hdel(layout.layout_key, "generation", LAYOUT_MARKED)
    async with client.pipeline(transaction=False) as pipe:
        for shard in range(layout.shards):
            pipe.delete(layout.shard_key(shard, GENERATION))
        await pipe.execute()


async def watch_once(
    client: Client, layout: Layout, connection: Connection, epochs: Epochs | None = None
) -> Verdict:
    """Compare Redis with the ledger's record once (and, with ``epochs``, with the epochs this
    ledger got before), and act on the verdict."""
    async with connection.transaction():
        await _exclusive(connection)
        return await _watch(client, layout, connection, epochs)


async def _watch(
    client: Client, layout: Layout, connection: Connection, epochs: Epochs | None
) -> Verdict:
    recorded = await latest(connection)
    found = await read_redis(client, layout, epochs)
    verdict = judge(recorded, found)
    if verdict.action == "mark":
        await mark_generation(client, layout)
    elif verdict.action == "adopt":
        assert found.generation is not None
        await record(connection, found.generation, "seen", layout.shards)
        log.info("redis generation %s recorded", found.generation)
    elif verdict.action == "lose":
        assert recorded is not None
        detail = f"Redis lost state {await last_event(connection)}: {verdict.why}"
        await _fence(client, layout, detail)
        await record(connection, recorded.generation, "lost", layout.shards, detail)
        log.error("%s; fenced until `creditgate ledger rebuild --all`", detail)
    elif verdict.action == "fenced" and (found.lost is None or found.generation is not None):
        await _fence(client, layout, verdict.why)  # a process marked it anew meanwhile
    return verdict


async def status(client: Client, layout: Layout, connection: Connection) -> str | None:
    """Why Redis does not hold the state the ledger knows of, or None when it does (or the
    ledger has recorded no generation yet). Reads only."""
    recorded = await latest(connection)
    verdict = judge(recorded, await read_redis(client, layout))
    if verdict.action == "lose":
        return f"Redis lost state {await last_event(connection)}: {verdict.why}"
    if verdict.action == "fenced" and recorded is not None:
        return verdict.why
    return None


async def renew(client: Client, layout: Layout, connection: Connection, why: str) -> str:
    """Start a new generation on a Redis the ledger's state was written back into: every
    marker, then the fence lifted, then the record, all under the generation lock (a crash
    before the record commits leaves the ledger's record at lost: the next check fences
    Redis again, and the rebuild is run again). Returns the generation."""
    generation = new_generation()
    async with connection.transaction():
        await _exclusive(connection)
        await write_markers(client, layout, generation, range(layout.shards))
        await client.hset(
            layout.layout_key,
            mapping={"shards": layout.shards, "generation": generation, LAYOUT_MARKED: 1},
        )
        await client.hdel(layout.layout_key, LAYOUT_LOST)
        await record(connection, generation, "rebuilt", layout.shards, why)
    return generation
