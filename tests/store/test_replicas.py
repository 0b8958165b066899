"""``redis_wait_replicas``: a commit is answered ``committed`` only once that many replicas hold
it (WAIT on the connection that ran it). A replica that falls behind (its replication link
stalled by a loopback proxy) turns the commit's answer into ``outcome_unknown``: the commit ran
on the primary and is spooled and replayed until the replicas have it, and the money moves
once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import pytest
import redis.asyncio as aioredis

from bench.faults import FaultProxy
from sidecar.catalog import Catalog
from sidecar.embedded import EmbeddedCluster, EmbeddedRedis
from sidecar.errors import OutcomeUnknown
from sidecar.service import Service
from sidecar.store.redis_store import RedisStore
from sidecar.wire import CommitRequest, GrantRequest, ReserveRequest, UpsertCustomerRequest
from tests.conftest import REDIS_TIMEOUT_S, Clock, Setup

pytestmark = pytest.mark.redis

WAIT_MS = 200
SETTLED_WITHIN_S = 30.0
"""How long replication or a replay may take; only a bug takes this long."""


@pytest.fixture(scope="module")
def primary() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis() as server:
        yield server


@pytest.fixture
def redis_url(primary: EmbeddedRedis) -> str:
    """Every store of this module works on the primary (a single node: see the cluster test
    below for the cluster)."""
    return primary.url


@pytest.fixture
async def link(primary: EmbeddedRedis) -> AsyncIterator[FaultProxy]:
    """The replication link from the replica to the primary, through a fault proxy."""
    proxy = await FaultProxy(primary.port).start()
    yield proxy
    await proxy.stop()


async def _until(condition: Any) -> None:
    deadline = time.monotonic() + SETTLED_WITHIN_S
    while not await condition():
        assert time.monotonic() < deadline, "not settled"
        await asyncio.sleep(0.05)


@pytest.fixture
async def replica(link: FaultProxy) -> AsyncIterator[aioredis.Redis]:
    """A replica of the primary, connected and in sync, and a client of it."""
    port = int(link.url.rsplit(":", 1)[1].split("/")[0])
    with EmbeddedRedis(replica_of=port) as server:
        client = aioredis.Redis.from_url(server.url)

        async def synced() -> bool:
            info = await client.info("replication")
            return bool(info.get("master_link_status") == "up")

        await _until(synced)
        yield client
        await client.aclose()


@pytest.fixture
async def durable(
    replica: aioredis.Redis, store: RedisStore, store_catalog: Catalog, clock: Clock,
    setup_customer: Setup,
) -> AsyncIterator[Service]:  # fmt: skip
    """A sidecar whose commits wait for one replica, the customer set up."""
    await setup_customer(grants={"paid": "100"})
    waiting = RedisStore(
        store.url, timeout_s=REDIS_TIMEOUT_S, wait_replicas=1, wait_timeout_ms=WAIT_MS
    )
    await waiting.agree_layout()
    sidecar = Service(waiting, store_catalog, clock=clock)
    yield sidecar
    await sidecar.close()
    await waiting.close()


async def _reserve(sidecar: Service, key: str, customer: str = "acme") -> str:
    answer = await sidecar.reserve(
        ReserveRequest(
            customer=customer, feature="chat", model="small", units={"input_tokens": 1000},
            idempotency_key=key,
        )
    )  # fmt: skip
    assert answer.allowed
    assert answer.reservation_id is not None
    return answer.reservation_id


def _commit(rid: str) -> CommitRequest:
    return CommitRequest(reservation_id=rid, units={"input_tokens": 1000})


async def _spent(service: Service) -> Decimal:
    """Credits gone from the grant of 100, holds apart."""
    balance = await service.balance("acme")
    return Decimal(100) - Decimal(balance.balance) - Decimal(balance.held)


async def _streamed(client: Any, service: Service) -> int:
    """Entries in the shards' event streams of ``client``'s server."""
    keys = service.store.layout.streams()
    async with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.xlen(key)
        return sum(await pipe.execute())


async def test_a_committed_answer_means_the_replica_holds_the_commit(
    durable: Service, service: Service, replica: aioredis.Redis
) -> None:
    for i in range(5):
        rid = await _reserve(durable, f"k-{i}")
        assert (await durable.commit(_commit(rid))).result == "committed"
        # Read at once, before anything else: the replica has every event the primary has.
        assert await _streamed(replica, service) == await _streamed(service.store.client, service)


async def test_a_replica_behind_makes_the_commit_unknown_and_it_moves_money_once(
    durable: Service, service: Service, link: FaultProxy
) -> None:
    rid = await _reserve(durable, "k")
    assert await _spent(service) == 0
    link.stall(True)  # the primary's writes no longer reach the replica
    with pytest.raises(OutcomeUnknown):
        await durable.commit(_commit(rid))
    assert len(durable.fallback.spool) == 1  # replayed until the replica has it
    charged = await _spent(service)
    assert charged > 0  # it ran on the primary
    link.stall(False)

    async def replayed() -> bool:
        return len(durable.fallback.spool) == 0

    await _until(replayed)
    again = await durable.commit(_commit(rid))
    assert again.result == "already_committed"
    assert await _spent(service) == charged


async def test_on_a_cluster_without_replicas_no_commit_is_answered_committed(
    redis_cluster: EmbeddedCluster, store_catalog: Catalog, clock: Clock
) -> None:
    admin = RedisStore(redis_cluster.url, timeout_s=REDIS_TIMEOUT_S)
    waiting = RedisStore(
        redis_cluster.url, timeout_s=REDIS_TIMEOUT_S, wait_replicas=1, wait_timeout_ms=WAIT_MS
    )
    try:
        await admin.client.flushall()
        await admin.agree_layout()
        await waiting.agree_layout()
        setup = Service(admin, store_catalog, clock=clock)
        sidecar = Service(waiting, store_catalog, clock=clock)
        customers = [f"c-{i}" for i in range(6)]  # spread over the three primaries
        for customer in customers:
            await setup.upsert_customer(customer, UpsertCustomerRequest(plan="test"))
            grant = GrantRequest(credit_type="paid", amount="100", idempotency_key="g")
            await setup.grant(customer, grant)
        rids = [await _reserve(sidecar, "k", customer) for customer in customers]
        for rid in rids:
            with pytest.raises(OutcomeUnknown):
                await sidecar.commit(_commit(rid))
        assert len(sidecar.fallback.spool) == len(rids)
        await sidecar.close()
    finally:
        await waiting.close()
        await admin.close()
