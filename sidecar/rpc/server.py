"""grpc.aio servers on the running event loop: the public service, health and reflection; the
admin service on its own port; the ledger's corrections on the ledger service's."""

from __future__ import annotations

from collections.abc import Callable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from sidecar.auth import TokenCheck
from sidecar.ledger.corrections import Corrections
from sidecar.ledger.proposals import Pricer, PricingDesk
from sidecar.ledger.settings import LEDGER_MAX_BYTES
from sidecar.rpc.gen.creditgate.v1 import creditgate_pb2 as pb
from sidecar.rpc.gen.creditgate.v1 import creditgate_pb2_grpc as pb_grpc
from sidecar.rpc.servicer import (
    ADMIN_ROUTES,
    LEDGER_ROUTES,
    PRICING_ROUTES,
    PUBLIC_ROUTES,
    Servicer,
    bearer,
    sidecar_servicer,
)
from sidecar.service import Service

__all__ = ["GRPC_MAX_RECEIVE_BYTES", "start_admin", "start_ledger", "start_public"]

# gRPC's own hard stop; anything above max_body_bytes but under this gets INVALID_ARGUMENT.
GRPC_MAX_RECEIVE_BYTES = 4 * 1024 * 1024
# No SO_REUSEPORT: a second sidecar on a taken port must fail, not share it silently.
_OPTIONS = [("grpc.max_receive_message_length", GRPC_MAX_RECEIVE_BYTES), ("grpc.so_reuseport", 0)]


async def _start(server: grpc.aio.Server, host: str, port: int) -> int:
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"gRPC could not bind {host}:{port}")
    await server.start()
    return int(bound)


async def start_public(
    service: Service, host: str, port: int, *, max_message_bytes: int
) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server(options=_OPTIONS)
    servicer = sidecar_servicer(service, PUBLIC_ROUTES, max_message_bytes=max_message_bytes)
    pb_grpc.add_CreditgateServiceServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    checker = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)
    names = (
        pb.DESCRIPTOR.services_by_name["CreditgateService"].full_name,
        health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
        reflection.SERVICE_NAME,
    )
    reflection.enable_server_reflection(names, server)
    bound = await _start(server, host, port)
    for name in ("", names[0]):
        await checker.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, bound


async def start_admin(
    service: Service, host: str, port: int, *, token: str, max_message_bytes: int
) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server(options=_OPTIONS)
    servicer = sidecar_servicer(
        service, ADMIN_ROUTES, max_message_bytes=max_message_bytes, admin_token=token
    )
    pb_grpc.add_CreditgateAdminServiceServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    names = (
        pb.DESCRIPTOR.services_by_name["CreditgateAdminService"].full_name,
        reflection.SERVICE_NAME,
    )
    reflection.enable_server_reflection(names, server)
    return server, await _start(server, host, port)


async def start_ledger(
    corrections: Corrections,
    desk: PricingDesk,
    host: str,
    port: int,
    *,
    token: str,
    check: TokenCheck,
    clock: Callable[[], int],
    environment: str,
) -> tuple[grpc.aio.Server, int]:
    """The ledger's corrections (``token`` is the ledger token, ``check`` reads scoped ones)
    and its pricing service (pricing tokens, or the ledger token), on one port."""
    server = grpc.aio.server(options=_OPTIONS)
    caller = bearer(token, check, clock, what="ledger token")
    servicer = Servicer(
        corrections, LEDGER_ROUTES, environment=environment,
        max_message_bytes=LEDGER_MAX_BYTES, caller=caller,
    )  # fmt: skip
    pb_grpc.add_CreditgateLedgerServiceServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    operator = token.encode()

    async def pricer(context: grpc.aio.ServicerContext) -> Pricer:
        header = str(dict(context.invocation_metadata() or ()).get("authorization", ""))
        return await desk.pricer(header, operator)

    pricing = Servicer(
        desk, PRICING_ROUTES, environment=environment,
        max_message_bytes=LEDGER_MAX_BYTES, caller=pricer,
    )  # fmt: skip
    pb_grpc.add_CreditgatePricingServiceServicer_to_server(pricing, server)  # type: ignore[no-untyped-call]
    names = (
        pb.DESCRIPTOR.services_by_name["CreditgateLedgerService"].full_name,
        pb.DESCRIPTOR.services_by_name["CreditgatePricingService"].full_name,
        reflection.SERVICE_NAME,
    )
    reflection.enable_server_reflection(names, server)
    return server, await _start(server, host, port)
