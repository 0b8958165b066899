"""Ledger workers split the shards between them: each heartbeats into a sorted set in Redis,
and the live workers, in name order, take the shards round-robin. A worker that stops
heartbeating leaves the set after ``timeout_ms``, and the others take its shards; what it
had read and not acknowledged is claimed at once, since it is not live (ledger/ingest.py).
While the split changes, two workers may read one shard for a moment: the consumer group still
delivers each entry to one of them, and the ledger's unique event ids absorb a redelivery."""

from __future__ import annotations

from sidecar.store.layout import Layout
from sidecar.store.topology import Client

__all__ = ["Membership", "shares"]


def shares(consumer: str, live: list[str], shards: int) -> list[int]:
    """The shards of ``consumer`` among the ``live`` workers (in name order)."""
    return list(range(live.index(consumer), shards, len(live)))


class Membership:
    """One worker's place among the live workers of ``group``."""

    def __init__(
        self, client: Client, layout: Layout, group: str, consumer: str, *, timeout_ms: int
    ) -> None:
        self.client = client
        self.key = layout.workers_key(group)
        self.consumer = consumer
        self.timeout_ms = timeout_ms

    async def beat(self) -> list[str]:
        """Heartbeat; returns the live workers' names, in order (this one among them)."""
        seconds, micros = await self.client.time()
        now_ms = seconds * 1000 + micros // 1000
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.zadd(self.key, {self.consumer: now_ms})
            pipe.zremrangebyscore(self.key, "-inf", now_ms - self.timeout_ms)
            pipe.zrange(self.key, 0, -1)
            *_, members = await pipe.execute()
        return sorted(member.decode() for member in members)

    async def leave(self) -> None:
        await self.client.zrem(self.key, self.consumer)
