from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from sidecar.catalog import Catalog, load_catalog
from sidecar.embedded import EmbeddedRedis
from sidecar.service import Service
from sidecar.store.redis_store import RedisStore
from sidecar.wire import BudgetScope, GrantRequest, SetBudgetRequest, UpsertCustomerRequest
from tests.conftest import Clock


@pytest.fixture(scope="session")
def store_catalog() -> Catalog:
    return load_catalog(Path(__file__).with_name("catalog.yaml"))


@pytest.fixture
def service(store: RedisStore, store_catalog: Catalog, clock: Clock) -> Service:
    return Service(store, store_catalog, clock=clock)


@pytest.fixture
async def sidecars(
    redis_server: EmbeddedRedis, store: RedisStore, store_catalog: Catalog, clock: Clock
) -> AsyncIterator[list[Service]]:
    """Four services, each with its own connection pool: four sidecars on one Redis."""
    stores = [RedisStore(redis_server.url) for _ in range(4)]
    yield [Service(s, store_catalog, clock=clock) for s in stores]
    for s in stores:
        await s.close()


Setup = Callable[..., Awaitable[None]]


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
