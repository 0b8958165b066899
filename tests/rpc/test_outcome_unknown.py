"""A commit Redis never answered is told apart from one that was not applied, over both
transports: HTTP 503 ``outcome_unknown`` and gRPC DEADLINE_EXCEEDED, each naming
``reservation_id``; a retry afterwards gets the first answer. And a feature that allows it is
answered in fallback while Redis is down, saying so on both transports."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from bench.faults import FaultProxy
from sidecar.client import GrpcClient, HttpClient
from sidecar.errors import OutcomeUnknown
from sidecar.server import Sidecar
from sidecar.wire import CommitRequest, ReserveRequest
from tests.rpc.conftest import ADMIN_TOKEN, StartSidecar, grpc_target, seed

pytestmark = pytest.mark.redis


@pytest.fixture
async def faulty(start_sidecar: StartSidecar, proxy: FaultProxy) -> Sidecar:
    """A sidecar whose Redis goes through the proxy, with a short deadline."""
    return await start_sidecar(redis=proxy.url, redis_deadline_ms=300, redis_timeout_ms=300)


def _reserve(key: str) -> ReserveRequest:
    return ReserveRequest(
        customer="acme", feature="chat", model="gpt-4o-mini",
        units={"input_tokens": 1000}, idempotency_key=key,
    )  # fmt: skip


@contextlib.asynccontextmanager
async def _clients(sidecar: Sidecar) -> AsyncIterator[tuple[HttpClient, GrpcClient]]:
    http = HttpClient(
        f"http://127.0.0.1:{sidecar.port}",
        admin_url=f"http://127.0.0.1:{sidecar.admin_port}",
        admin_token=ADMIN_TOKEN,
    )
    grpc = GrpcClient(grpc_target(sidecar))
    async with http, grpc:
        yield http, grpc


@pytest.mark.parametrize("transport", ["http", "grpc"])
async def test_an_unanswered_commit_is_outcome_unknown_on_both_transports(
    faulty: Sidecar, proxy: FaultProxy, transport: str
) -> None:
    async with _clients(faulty) as (http, grpc):
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
            while len(faulty.service.fallback.spool):
                await asyncio.sleep(0.05)
        assert (await client.commit(commit)).result == "already_committed"


@pytest.mark.parametrize("transport", ["http", "grpc"])
async def test_answers_in_fallback_say_so_on_both_transports(
    faulty: Sidecar, proxy: FaultProxy, transport: str
) -> None:
    async with _clients(faulty) as (http, grpc):
        await seed(http, grants={"paid": "10"})
        client = http if transport == "http" else grpc
        assert (await client.reserve(_reserve("warm"))).allowed  # acme is read, and known
        proxy.down(True)
        chat = await client.reserve(_reserve("chat"))
        assert (chat.reason, chat.decided_by) == ("store_unavailable", "store")
        ticket = ReserveRequest(
            customer="acme", feature="support_agent", units={"tickets_resolved": 1},
            idempotency_key="ticket",
        )  # fmt: skip
        held = await client.reserve(ticket)
        assert (held.allowed, held.held, held.decided_by) == (True, "0.990000000", "fallback")
        commit = CommitRequest(
            reservation_id=held.reservation_id or "", units={"tickets_resolved": 1}
        )
        done = await client.commit(commit)
        assert (done.result, done.cost, done.decided_by) == ("committed", "0.990000000", "fallback")
        proxy.down(False)
        async with asyncio.timeout(30):  # replayed once Redis answers; only a bug takes 30 s
            while len(faulty.service.fallback.spool):
                await asyncio.sleep(0.05)
        applied = await client.commit(commit)  # Redis has it now, and answers as the first
        assert (applied.result, applied.cost, applied.decided_by) == (
            "already_committed", "0.990000000", "store",
        )  # fmt: skip
