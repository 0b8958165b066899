"""Which Redis, and how its keys are laid out: the client for a URL (one node or a cluster)
and the deployment's shard count, recorded once in Redis and checked by every process.

``redis://``, ``rediss://`` and ``unix://`` name one node; ``redis+cluster://host:port`` (and
``rediss+cluster://``) name any node of a Redis Cluster, from which the client learns the rest.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ClusterDownError

from sidecar.errors import SettingsError
from sidecar.store.layout import LAYOUT_KEY, LEGACY_REGISTRY_KEY, SHARDS_DEFAULT, Layout

__all__ = [
    "CLUSTER_SCHEMES",
    "NODE_SCHEMES",
    "Client",
    "agree_layout",
    "check_health",
    "is_cluster",
    "is_cluster_url",
    "make_client",
    "node_url",
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


async def agree_layout(client: Client, shards: int | None) -> Layout:
    """The deployment's layout: recorded in Redis by the first process to start (with
    ``shards``, or the default), and refused when a process is set up for another one."""
    if not is_cluster(client) and (await client.info("cluster")).get("cluster_enabled"):
        raise SettingsError(
            "--redis (or CREDITGATE_REDIS) names a node of a Redis Cluster with a single-node "
            "URL: write it redis+cluster://host:port (rediss+cluster:// with TLS)"
        )
    if not await client.exists(LAYOUT_KEY):
        if await client.exists(LEGACY_REGISTRY_KEY):
            raise SettingsError(
                f"this Redis holds customers in the layout before shards ({LEGACY_REGISTRY_KEY}"
                " exists); move them first: creditgate store migrate --redis URL"
            )
        await client.hsetnx(LAYOUT_KEY, "shards", shards or SHARDS_DEFAULT)
    recorded = int(await client.hget(LAYOUT_KEY, "shards") or 0)
    if shards is not None and shards != recorded:
        raise SettingsError(
            f"--shards (or CREDITGATE_SHARDS) is {shards}, but this Redis is laid out in "
            f"{recorded} shards ({LAYOUT_KEY}); the shard count is chosen once: leave it unset "
            f"or set {recorded}"
        )
    return Layout(recorded)


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
