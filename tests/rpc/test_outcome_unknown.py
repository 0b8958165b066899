"""A commit Redis never answered is told apart from one that was not applied, over both
transports: HTTP 503 ``outcome_unknown`` and gRPC DEADLINE_EXCEEDED, each naming
``reservation_id``; a retry afterwards gets the first answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bench.faults import FaultProxy
from sidecar.client import GrpcClient, HttpClient
from sidecar.embedded import EmbeddedRedis
from sidecar.errors import OutcomeUnknown
from sidecar.server import Sidecar
from sidecar.wire import CommitRequest, ReserveRequest
from tests.rpc.conftest import ADMIN_TOKEN, StartSidecar, grpc_target, seed

pytestmark = pytest.mark.redis


@pytest.fixture
async def proxy(redis_server: EmbeddedRedis) -> AsyncIterator[FaultProxy]:
    proxy = await FaultProxy(redis_server.port).start()
    yield proxy
    await proxy.stop()


@pytest.fixture
async def faulty(start_sidecar: StartSidecar, proxy: FaultProxy) -> Sidecar:
    """A sidecar whose Redis goes through the proxy, with a short deadline."""
    return await start_sidecar(redis=proxy.url, redis_deadline_ms=300, redis_timeout_ms=300)


def _reserve(key: str) -> ReserveRequest:
    return ReserveRequest(
        customer="acme", feature="chat", model="gpt-4o-mini",
        units={"input_tokens": 1000}, idempotency_key=key,
    )  # fmt: skip


@pytest.mark.parametrize("transport", ["http", "grpc"])
async def test_an_unanswered_commit_is_outcome_unknown_on_both_transports(
    faulty: Sidecar, proxy: FaultProxy, transport: str
) -> None:
    http = HttpClient(
        f"http://127.0.0.1:{faulty.port}",
        admin_url=f"http://127.0.0.1:{faulty.admin_port}",
        admin_token=ADMIN_TOKEN,
    )
    grpc = GrpcClient(grpc_target(faulty))
    async with http, grpc:
        await seed(http, grants={"paid": "10"})
        client = http if transport == "http" else grpc
        held = await client.reserve(_reserve("k-1"))
        assert held.allowed, held
        commit = CommitRequest(reservation_id=held.reservation_id or "", units={"input_tokens": 10})
        proxy.stall(True)
        with pytest.raises(OutcomeUnknown) as unknown:
            await client.commit(commit)
        assert unknown.value.field == "reservation_id"
        proxy.stall(False)
        proxy.drop()
        async with asyncio.timeout(30):  # the sidecar repeats it; only a bug takes 30 s
            while len(faulty.service.unsettled):
                await asyncio.sleep(0.05)
        assert (await client.commit(commit)).result == "already_committed"
