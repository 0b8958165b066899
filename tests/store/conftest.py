from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sidecar.catalog import Catalog, load_catalog
from sidecar.service import Service
from sidecar.store.redis_store import RedisStore
from tests.conftest import REDIS_TIMEOUT_S, TOPOLOGIES, Clock, on_both_topologies


@pytest.fixture(params=TOPOLOGIES)
def redis_url(request: pytest.FixtureRequest) -> str:
    """Every test of this suite runs on a single node and on a three-primary cluster."""
    return on_both_topologies(request)


@pytest.fixture(scope="session")
def store_catalog() -> Catalog:
    return load_catalog(Path(__file__).with_name("catalog.yaml"))


@pytest.fixture
def service(store: RedisStore, store_catalog: Catalog, clock: Clock) -> Service:
    return Service(store, store_catalog, clock=clock)


@pytest.fixture
async def sidecars(
    redis_url: str, store: RedisStore, store_catalog: Catalog, clock: Clock
) -> AsyncIterator[list[Service]]:
    """Four services, each with its own connection pool: four sidecars on one Redis."""
    stores = [RedisStore(redis_url, timeout_s=REDIS_TIMEOUT_S) for _ in range(4)]
    yield [Service(s, store_catalog, clock=clock) for s in stores]
    for s in stores:
        await s.close()
