"""Standard gRPC tooling works against the sidecar: grpc.health.v1 answers SERVING, and server
reflection lists the services and serves the Creditgate descriptor."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from sidecar.server import Sidecar
from tests.rpc.conftest import grpc_admin_target, grpc_target

pytestmark = pytest.mark.redis

SERVICE = "creditgate.v1.CreditgateService"
ADMIN = "creditgate.v1.CreditgateAdminService"
HEALTH = "grpc.health.v1.Health"
REFLECTION = "grpc.reflection.v1alpha.ServerReflection"


@pytest.fixture
async def channel(sidecar: Sidecar) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(grpc_target(sidecar)) as channel:
        yield channel


@pytest.fixture
async def admin_channel(sidecar: Sidecar) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(grpc_admin_target(sidecar)) as channel:
        yield channel


@pytest.mark.parametrize("service", ["", SERVICE])
async def test_health_check_answers_serving(channel: grpc.aio.Channel, service: str) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    answer = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


async def test_health_check_of_an_unknown_service_is_not_found(channel: grpc.aio.Channel) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Check(health_pb2.HealthCheckRequest(service="creditgate.v1.Nope"), timeout=5)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def _reflect(
    channel: grpc.aio.Channel, *requests: reflection_pb2.ServerReflectionRequest
) -> list[reflection_pb2.ServerReflectionResponse]:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    call = stub.ServerReflectionInfo(iter(requests), timeout=5)
    return [answer async for answer in call]


async def test_reflection_lists_the_public_services(channel: grpc.aio.Channel) -> None:
    [answer] = await _reflect(channel, reflection_pb2.ServerReflectionRequest(list_services=""))
    names = {service.name for service in answer.list_services_response.service}
    assert names == {SERVICE, HEALTH, REFLECTION}
    assert ADMIN not in names  # the admin service lives on its own port only


async def test_reflection_on_the_admin_port_lists_the_admin_service(
    admin_channel: grpc.aio.Channel,
) -> None:
    [answer] = await _reflect(
        admin_channel, reflection_pb2.ServerReflectionRequest(list_services="")
    )
    names = {service.name for service in answer.list_services_response.service}
    assert names == {ADMIN, REFLECTION}


@pytest.mark.parametrize("symbol", [SERVICE, "creditgate.v1.ReserveRequest"])
async def test_reflection_serves_the_file_descriptor(
    channel: grpc.aio.Channel, symbol: str
) -> None:
    answers = await _reflect(
        channel,
        reflection_pb2.ServerReflectionRequest(file_containing_symbol=symbol),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="creditgate.v1.Nope"),
    )
    assert len(answers) == 2
    found, missing = answers
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in found.file_descriptor_response.file_descriptor_proto
    ]
    by_name = {file.name: file for file in files}
    assert "creditgate/v1/creditgate.proto" in by_name
    file = by_name["creditgate/v1/creditgate.proto"]
    assert file.package == "creditgate.v1"
    services = {service.name: service for service in file.service}
    assert [m.name for m in services["CreditgateService"].method] == [
        "Check", "Reserve", "Commit", "Release", "GetBalance", "GetBudgets",
    ]  # fmt: skip
    reserve = next(m for m in services["CreditgateService"].method if m.name == "Reserve")
    assert (reserve.input_type, reserve.output_type) == (
        ".creditgate.v1.ReserveRequest", ".creditgate.v1.ReserveResponse",
    )  # fmt: skip
    assert missing.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]
