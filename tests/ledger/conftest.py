"""A real PostgreSQL for the ledger tests (embedded, on a free port the OS picks), a fresh
database per test, and the suite's real valkey-server; sidecars are driven through Service.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from sidecar.catalog import Catalog, load_catalog
from sidecar.ledger.db import Pool, open_pool, record_catalog
from sidecar.ledger.embedded_pg import EmbeddedPostgres
from sidecar.ledger.ingest import Ingestor
from sidecar.ledger.streams import StreamReader
from sidecar.service import Service
from sidecar.store.redis_store import RedisStore
from sidecar.wire import (
    CommitRequest,
    CommitResponse,
    ReserveRequest,
)
from tests.conftest import TOPOLOGIES, Clock, on_both_topologies

CATALOG = Path(__file__).with_name("catalog.yaml")


@pytest.fixture(params=TOPOLOGIES)
def redis_url(request: pytest.FixtureRequest) -> str:
    """Every test of this suite runs on a single node and on a three-primary cluster."""
    return on_both_topologies(request)


@pytest.fixture(scope="session")
def postgres() -> Iterator[EmbeddedPostgres]:
    with EmbeddedPostgres(durable=False) as server:
        yield server


@pytest.fixture
async def database(postgres: EmbeddedPostgres) -> AsyncIterator[str]:
    """The URL of a new, empty database (dropped after the test)."""
    name = f"ledger_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(postgres.url)
    await admin.execute(f"CREATE DATABASE {name}")
    yield postgres.url.rsplit("/", 1)[0] + "/" + name
    await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
    await admin.close()


@pytest.fixture(scope="session")
def ledger_catalog() -> Catalog:
    return load_catalog(CATALOG)


@pytest.fixture
async def pool(database: str, ledger_catalog: Catalog) -> AsyncIterator[Pool]:
    pool = await open_pool(database, max_size=6)
    async with pool.acquire() as connection:
        await record_catalog(connection, ledger_catalog)
    yield pool
    await pool.close()


@pytest.fixture
def service(store: RedisStore, ledger_catalog: Catalog, clock: Clock) -> Service:
    return Service(store, ledger_catalog, clock=clock)


def worker(store: RedisStore, pool: Pool, consumer: str = "w1", **options: Any) -> Ingestor:
    """One ledger worker in the group ``ledger`` (trimming off: tests read the streams)."""
    options.setdefault("trim", False)
    reader = StreamReader(store.client, store.layout, group="ledger", consumer=consumer)
    return Ingestor(reader, pool, **options)


async def drain(ingestor: Ingestor) -> int:
    """Start the worker and run rounds until a round finds nothing; entries stored."""
    before = ingestor.stored
    await ingestor.start()
    while await ingestor.step():
        pass
    return ingestor.stored - before


Call = Callable[..., Awaitable[CommitResponse]]


@pytest.fixture
def call(service: Service) -> Call:
    """One model call through the sidecar: reserve the worst case, commit the actual units."""
    counter = iter(range(1_000_000))

    async def run(
        customer: str = "acme",
        *,
        units: dict[str, int],
        feature: str = "chat",
        model: str | None = "small",
        worst: dict[str, int] | None = None,
        **subject: str,
    ) -> CommitResponse:
        hold = await service.reserve(
            ReserveRequest(
                customer=customer,
                feature=feature,
                model=model,
                units=worst or units,
                idempotency_key=f"req-{next(counter)}",
                **subject,
            )
        )
        assert hold.allowed, hold.reason
        done = await service.commit(
            CommitRequest(reservation_id=hold.reservation_id or "", units=units)
        )
        assert done.result == "committed"
        return done

    return run
