"""A sidecar on a Redis Cluster: customers on every node are served through the HTTP API, a
single-node URL pointing at a cluster is refused, and readiness follows the cluster's state."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from redis.crc import key_slot

from sidecar.embedded import EmbeddedCluster
from sidecar.errors import SettingsError
from sidecar.server import Sidecar
from sidecar.store.topology import node_url
from tests.conftest import sidecars
from tests.http.conftest import ADMIN_TOKEN, Api

pytestmark = pytest.mark.redis


@pytest.fixture
def redis_url(redis_cluster: EmbeddedCluster) -> str:
    return redis_cluster.url


def _counted(sidecar: Sidecar, name: str) -> float:
    return sum(
        sample.value
        for family in sidecar.service.metrics.registry.collect()
        if family.name == name
        for sample in family.samples
        if not sample.name.endswith("_created")
    )


async def test_customers_on_every_node_are_served(api: Api, redis_cluster: EmbeddedCluster) -> None:
    customers = [f"tenant-{i}" for i in range(12)]
    owners = {redis_cluster.owner(key_slot(api.sidecar.store.layout.customer_key(c).encode()))
              for c in customers}  # fmt: skip
    assert owners == {0, 1, 2}
    for customer in customers:
        await api.seed(customer, grants={"paid": "1"})
        hold = await api.ok(
            "/v1/reserve",
            {"customer": customer, "feature": "chat", "model": "gpt-4o-mini",
             "units": {"input_tokens": 1000}, "idempotency_key": f"{customer}-1"},
        )  # fmt: skip
        assert hold["allowed"], hold
        done = await api.ok(
            "/v1/commit",
            {"reservation_id": hold["reservation_id"], "units": {"input_tokens": 1000}},
        )
        assert done["result"] == "committed"
        balance = await api.ok(f"/v1/balance?customer={customer}")
        assert balance["held"] == "0.000000000"
    assert (await api.ok("/readyz"))["status"] == "ready"
    assert _counted(api.sidecar, "creditgate_lua_errors") == 0
    assert _counted(api.sidecar, "creditgate_redis_up") == 1


async def test_a_single_node_url_to_a_cluster_node_is_refused(
    redis_cluster: EmbeddedCluster,
) -> None:
    async with sidecars(node_url(redis_cluster.url), ADMIN_TOKEN) as start:
        with pytest.raises(SettingsError, match=r"redis\+cluster://"):
            await start()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_readiness_and_redis_up_follow_the_cluster(http: aiohttp.ClientSession) -> None:
    with EmbeddedCluster(3) as cluster:
        async with sidecars(cluster.url, ADMIN_TOKEN) as start:
            sidecar = await start(metrics_port=0)
            ready = f"http://127.0.0.1:{sidecar.metrics_port}/readyz"
            async with http.get(ready) as response:
                assert response.status == 200
            cluster.nodes[2].stop()  # a third of the slots have no node now
            async with http.get(ready) as response:
                assert response.status == 503
                assert (await response.json())["status"] == "not_ready"
            assert _counted(sidecar, "creditgate_redis_up") == 0
