"""Redis losing its data is detected, not absorbed: a customer the sidecar cannot find while
the deployment's layout record is gone too is not told it does not exist."""

from __future__ import annotations

import pytest

from sidecar.service import Service
from sidecar.store.redis_store import RedisStore
from sidecar.wire import ReserveRequest
from tests.conftest import Clock, Setup

pytestmark = pytest.mark.redis


def _reserve(customer: str) -> ReserveRequest:
    return ReserveRequest(
        customer=customer, feature="chat", model="small", units={"input_tokens": 1000},
        idempotency_key="k-1",
    )  # fmt: skip


async def test_a_flushed_redis_answers_store_unavailable_not_unknown_customer(
    store: RedisStore, service: Service, setup_customer: Setup, clock: Clock
) -> None:
    await setup_customer(grants={"paid": "1"})
    assert (await service.reserve(_reserve("acme"))).allowed
    await store.client.flushall()  # the suite's own server: Redis restarted empty
    restarted = Service(store, service.catalog, clock=clock)  # no cached customer either

    lost = await restarted.reserve(_reserve("acme"))
    assert lost.reason == "store_unavailable"  # never unknown_customer for a paying customer
    assert (await restarted.reserve(_reserve("nobody"))).reason == "store_unavailable"

    await store.agree_layout()  # as `creditgate ledger rebuild` records it again
    assert (await restarted.reserve(_reserve("nobody"))).reason == "unknown_customer"
