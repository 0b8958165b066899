from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.faults import FaultProxy
from sidecar.catalog import Catalog, load_catalog
from sidecar.embedded import EmbeddedCluster, EmbeddedRedis
from sidecar.server import Sidecar
from sidecar.service import Service
from sidecar.settings import Settings
from sidecar.store.redis_store import RedisStore
from sidecar.wire import BudgetScope, GrantRequest, SetBudgetRequest, UpsertCustomerRequest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "policies" / "example.yaml"
# 2026-11-19T12:00:00Z: far from any day or month boundary.
NOON_MS = 1_795_089_600_000
# Redis connect and read timeout for the suite's stores and sidecars: one only a real bug
# exceeds. A cold burst opens up to 256 connections at once, and on a busy 2-core machine
# that takes longer than the 250 ms a sidecar uses by default. Tests of timeouts set their own.
REDIS_TIMEOUT_S = 10.0


class Clock:
    """A pinned clock that tests move by hand."""

    def __init__(self, now_ms: int = NOON_MS) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms

    def advance(self, ms: int) -> None:
        self.now_ms += ms


@pytest.fixture(scope="session")
def redis_server() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis() as server:
        yield server


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[EmbeddedCluster]:
    """A Redis Cluster of three primaries, started on first use."""
    with EmbeddedCluster(3) as cluster:
        yield cluster


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis) -> str:
    """The Redis the test's store and sidecars use: the single node, unless a suite's
    conftest runs it on both topologies (``on_both_topologies``)."""
    return redis_server.url


@pytest.fixture
async def proxy(redis_url: str, redis_server: EmbeddedRedis) -> AsyncIterator[FaultProxy]:
    """A fault-injecting proxy in front of the suite's single node (a cluster client learns
    every node's own address, so the cluster runs skip the tests that use it)."""
    if redis_url != redis_server.url:
        pytest.skip("the fault proxy fronts a single node")
    proxy = await FaultProxy(redis_server.port).start()
    yield proxy
    await proxy.stop()


def on_both_topologies(request: pytest.FixtureRequest) -> str:
    """For a suite's ``redis_url`` fixture with params ``TOPOLOGIES``: the single node, or the
    three-primary cluster."""
    if request.param == "cluster":
        return str(request.getfixturevalue("redis_cluster").url)
    return str(request.getfixturevalue("redis_server").url)


TOPOLOGIES = ("node", "cluster")


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog(EXAMPLE)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[RedisStore]:
    """A store on the suite's own server, emptied first (the suite started that server), in
    the default layout, as a sidecar starting on it would record."""
    store = RedisStore(redis_url, timeout_s=REDIS_TIMEOUT_S)
    await store.client.flushall()
    await store.agree_layout()
    yield store
    await store.close()


async def stream_events(
    store: RedisStore, kind: str, customer: str = "acme"
) -> list[dict[str, str]]:
    """The customer's events of ``kind`` in its shard's stream, oldest first, decoded."""
    entries = await store.client.xrange(store.layout.stream_of(customer))
    return [
        {k.decode(): v.decode() for k, v in fields.items()}
        for _, fields in entries
        if fields[b"kind"] == kind.encode()
    ]


@pytest.fixture
def service(store: RedisStore, catalog: Catalog, clock: Clock) -> Service:
    return Service(store, catalog, clock=clock)


Setup = Callable[..., Awaitable[None]]
"""Creates a customer with grants and budgets through the ``service`` fixture in scope."""


@pytest.fixture
def setup_customer(service: Service) -> Setup:
    async def setup(
        customer: str = "acme",
        plan: str = "test",
        grants: dict[str, str] | None = None,
        budgets: list[tuple[dict[str, str], str, str]] | None = None,
    ) -> None:
        await service.upsert_customer(customer, UpsertCustomerRequest(plan=plan))
        for credit_type, amount in (grants or {}).items():
            await service.grant(
                customer,
                GrantRequest(
                    credit_type=credit_type, amount=amount, idempotency_key=f"g-{credit_type}"
                ),
            )
        for scope, period, limit in budgets or []:
            await service.set_budget(
                customer, SetBudgetRequest(scope=BudgetScope(**scope), period=period, limit=limit)
            )

    return setup


StartSidecar = Callable[..., Awaitable[Sidecar]]


@contextlib.asynccontextmanager
async def sidecars(redis_url: str, admin_token: str) -> AsyncIterator[StartSidecar]:
    """Start any number of sidecars on ``redis_url``, every port picked by the OS; all stop
    on exit. Keyword arguments override settings (``http=False``, ``metrics_port=0``...)."""
    started: list[Sidecar] = []

    async def start(**overrides: Any) -> Sidecar:
        settings: dict[str, Any] = {
            "catalog": str(EXAMPLE), "redis": redis_url, "port": 0, "admin_port": 0,
            "grpc_port": 0, "grpc_admin_port": 0, "admin_token": admin_token,
            "redis_timeout_ms": int(REDIS_TIMEOUT_S * 1000),
            "redis_deadline_ms": int(REDIS_TIMEOUT_S * 1000),
        }  # fmt: skip
        sidecar = Sidecar(Settings(**(settings | overrides)))
        started.append(sidecar)  # stopped at the end, started or not, as serve() does
        await sidecar.start()
        return sidecar

    try:
        yield start
    finally:
        for sidecar in started:
            await sidecar.stop()
