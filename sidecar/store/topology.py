"""Which Redis, and how its keys are laid out: the client for a URL (one node or a cluster)
and the deployment's shard count, recorded once in Redis and checked by every process.

``redis://``, ``rediss://`` and ``unix://`` name one node; ``redis+cluster://host:port`` (and
``rediss+cluster://``) name any node of a Redis Cluster, from which the client learns the rest.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ClusterDownError

from sidecar.environment import LIVE
from sidecar.errors import SettingsError
from sidecar.store.layout import (
    GENERATION,
    LAYOUT_LOST,
    LAYOUT_MARKED,
    SHARDS_DEFAULT,
    Layout,
)

__all__ = [
    "CLUSTER_SCHEMES",
    "NODE_SCHEMES",
    "Client",
    "agree_layout",
    "check_health",
    "is_cluster",
    "is_cluster_url",
    "make_client",
    "mark_generation",
    "new_generation",
    "node_url",
    "write_markers",
]

NODE_SCHEMES = ("redis://", "rediss://", "unix://")
CLUSTER_SCHEMES = ("redis+cluster://", "rediss+cluster://")
Client = aioredis.Redis | RedisCluster
"""Both expose the commands Creditgate uses; a cluster routes each by its key's slot."""


def is_cluster_url(url: str) -> bool:
    return url.startswith(CLUSTER_SCHEMES)


def node_url(url: str) -> str:
    """The URL of the one node ``url`` names (for a cluster: the node it starts from)."""
    return url.replace("+cluster://", "://", 1) if is_cluster_url(url) else url


def make_client(url: str, **options: Any) -> Client:
    """A client for ``url``; ``options`` are redis-py connection options (timeouts, pool)."""
    if is_cluster_url(url):
        return RedisCluster.from_url(node_url(url), **options)
    return aioredis.Redis.from_url(url, **options)


def is_cluster(client: Client) -> bool:
    return isinstance(client, RedisCluster)


async def agree_layout(client: Client, shards: int | None, environment: str = LIVE) -> Layout:
    """The layout of the deployment's ``environment``: recorded in Redis by the first process
    to start (with ``shards``, or the default), and refused when a process is set up for
    another one."""
    wanted = Layout(environment=environment)
    layout_key, legacy_key = wanted.layout_key, wanted.legacy_registry_key
    if not is_cluster(client) and (await client.info("cluster")).get("cluster_enabled"):
        raise SettingsError(
            "--redis (or CREDITGATE_REDIS) names a node of a Redis Cluster with a single-node "
            "URL: write it redis+cluster://host:port (rediss+cluster:// with TLS)"
        )
    if not await client.exists(layout_key):
        if await client.exists(legacy_key):
            raise SettingsError(
                f"this Redis holds customers in the layout before shards ({legacy_key}"
                " exists); move them first: creditgate store migrate --redis URL"
            )
        await client.hsetnx(layout_key, "shards", shards or SHARDS_DEFAULT)
    recorded = int(await client.hget(layout_key, "shards") or 0)
    if shards is not None and shards != recorded:
        raise SettingsError(
            f"--shards (or CREDITGATE_SHARDS) is {shards}, but this Redis is laid out in "
            f"{recorded} shards ({layout_key}); the shard count is chosen once: leave it unset "
            f"or set {recorded}"
        )
    return Layout(recorded, environment)


async def check_health(client: Client) -> bool:
    """Every node answers (a cluster: every primary, and each sees the cluster's state as ok);
    raises the driver's error, ClusterDownError for a cluster that is not ok."""
    if not isinstance(client, RedisCluster):
        return bool(await client.ping())
    await client.initialize()  # once; learns the nodes
    for node in client.get_primaries():
        state = (await client.cluster_info(target_nodes=node)).get("cluster_state")
        if state != "ok":
            raise ClusterDownError(f"node {node.name} sees cluster_state {state}")
    return True


def new_generation() -> str:
    return secrets.token_hex(8)


async def write_markers(
    client: Client, layout: Layout, generation: str, shards: Iterable[int]
) -> None:
    """Write the generation marker of ``shards`` (one pipeline; per node on a cluster)."""
    async with client.pipeline(transaction=False) as pipe:
        for shard in shards:
            pipe.set(layout.shard_key(shard, GENERATION), generation)
        await pipe.execute()


async def mark_generation(client: Client, layout: Layout) -> str | None:
    """Give the deployment a generation and every shard its marker, once: a new deployment,
    or one from before markers. Returns the generation; None, and nothing written, while the
    ledger has fenced this Redis for losing state (LAYOUT_LOST): only a rebuild marks it.

    Markers are written before the layout records them all written, so a process that stops
    half way leaves the rest to the next one; once recorded, a marker that goes missing (a
    node of a cluster restarted empty) is never written again here."""
    if await client.hexists(layout.layout_key, LAYOUT_LOST):
        return None
    await client.hsetnx(layout.layout_key, "generation", new_generation())
    answer: Any = await client.hmget(layout.layout_key, "generation", LAYOUT_MARKED)
    generation, marked = answer[0].decode(), answer[1]
    if marked is None:
        await write_markers(client, layout, generation, range(layout.shards))
        await client.hset(layout.layout_key, LAYOUT_MARKED, 1)
    return str(generation)
