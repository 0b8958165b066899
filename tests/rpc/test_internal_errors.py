"""A bug inside an operation: both transports answer a generic internal error (no trace, no
detail) and log it once with its trace."""

from __future__ import annotations

import logging

import aiohttp
import grpc
import pytest
from grpc_status import rpc_status

from sidecar.rpc.gen.creditgate.v1 import creditgate_pb2 as pb
from sidecar.server import Sidecar
from sidecar.wire import BalanceResponse
from tests.rpc.conftest import Stubs

pytestmark = pytest.mark.redis


@pytest.fixture
def broken(sidecar: Sidecar, monkeypatch: pytest.MonkeyPatch) -> None:
    async def balance(customer: str) -> BalanceResponse:
        raise RuntimeError(f"secret detail about {customer}")

    monkeypatch.setattr(sidecar.service, "balance", balance)


@pytest.mark.usefixtures("broken")
async def test_http_answers_500_internal_and_logs_the_trace(
    sidecar: Sidecar, caplog: pytest.LogCaptureFixture
) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"http://127.0.0.1:{sidecar.port}/v1/balance?customer=acme",
            headers={"X-Request-Id": "req-http-1"},
        ) as response,
    ):
        assert response.status == 500
        body = await response.json()
    assert body == {
        "error": {"code": "internal", "field": "", "message": "internal error; it is logged"}
    }
    (record,) = [r for r in caplog.records if r.getMessage() == "unhandled error"]
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None
    assert "secret detail" in str(record.exc_info[1])
    assert vars(record)["request_id"] == "req-http-1"


@pytest.mark.usefixtures("broken")
async def test_grpc_answers_internal_and_logs_the_trace(
    stubs: Stubs, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stubs.public.GetBalance(
            pb.GetBalanceRequest(customer="acme"),
            timeout=5,
            metadata=(("x-request-id", "req-grpc-1"),),
        )
    assert raised.value.code() == grpc.StatusCode.INTERNAL
    assert raised.value.details() == "internal error; it is logged"
    assert rpc_status.from_call(raised.value) is not None
    assert not rpc_status.from_call(raised.value).details  # no BadRequest: no field at fault
    (record,) = [r for r in caplog.records if r.getMessage() == "unhandled error"]
    assert record.exc_info is not None
    assert vars(record)["request_id"] == "req-grpc-1"
