"""A bound on Redis memory: past it, reserves are refused before Redis runs out.

While the ledger (or PostgreSQL) is down, events wait in the streams and Redis memory grows;
with ``noeviction`` a full Redis would stop every reserve, commit and release at once. With a
bound set (``redis_max_memory_bytes``), each sidecar reads Redis's ``used_memory`` every
second, and while it is at or above the bound answers new reserves ``store_unavailable`` with
scope ``redis/memory``; commits and releases go on (money is never dropped to make room),
and reserves resume once the ledger has drained the streams.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sidecar.errors import StoreError
from sidecar.store.connection import RedisConnection

__all__ = ["MEMORY_SCOPE", "watch_memory"]

log = logging.getLogger(__name__)

MEMORY_SCOPE = "redis/memory"
INTERVAL_S = 1.0


def used_memory(info: dict[str, Any]) -> int:
    """``used_memory`` of one node, or the largest of a cluster's nodes (by node name)."""
    if "used_memory" in info:
        return int(info["used_memory"])
    return max((used_memory(node) for node in info.values() if isinstance(node, dict)), default=0)


async def watch_memory(store: RedisConnection, limit_bytes: int) -> None:
    """Keep ``store.memory_full`` up to date until cancelled."""
    while True:
        try:
            used = used_memory(await store._call(store.client.info, "memory", name="info"))
        except StoreError:
            pass  # Redis down: the breaker and the deadlines answer for it
        else:
            full = used >= limit_bytes
            if full != store.memory_full:
                log.warning(
                    "Redis memory %s the bound: %d of %d bytes; reserves %s",
                    "reached" if full else "back under", used, limit_bytes,
                    "refused" if full else "resume",
                )  # fmt: skip
            store.memory_full = full
        await asyncio.sleep(INTERVAL_S)
