"""The gRPC transport: thin adapters over the service layer, built from one table of routes.

Each route decodes the proto request into the wire struct, calls the same Service method the
HTTP handler calls, and encodes the wire answer back. Expired deadlines and oversized messages
are refused before anything moves; errors map to status in ``errors.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import Message

from sidecar.auth import authorize
from sidecar.errors import InternalError, InvalidInput, RequestError
from sidecar.rpc.convert import from_proto, to_proto
from sidecar.rpc.errors import status_of
from sidecar.rpc.gen.creditgate.v1 import creditgate_pb2 as pb
from sidecar.service import Service
from sidecar.wire import (
    CheckRequest,
    CommitRequest,
    GrantRequest,
    IssueProxyKeyRequest,
    ReleaseRequest,
    ReserveRequest,
    SetBudgetRequest,
    UpsertCustomerRequest,
)

__all__ = ["ADMIN_ROUTES", "PUBLIC_ROUTES", "Servicer"]

log = logging.getLogger(__name__)
REQUEST_ID_HEADER = "x-request-id"

Call = Callable[[Service, Any], Awaitable[Any]]


async def _guarded(
    call: Call, service: Service, request: Message, context: grpc.aio.ServicerContext
) -> Any:
    """Run one operation; a bug leaves as InternalError, logged here with its trace and the
    caller's ``x-request-id``."""
    try:
        return await call(service, request)
    except RequestError:
        raise
    except Exception as error:
        metadata = dict(context.invocation_metadata() or ())
        context_fields = {
            "request": type(request).__name__,
            "request_id": metadata.get(REQUEST_ID_HEADER),
        }
        log.exception("unhandled error", extra=context_fields)
        raise InternalError from error


Route = tuple[Call, type[Message]]
_CUSTOMER = ("customer",)


def _subject(message: Any) -> dict[str, str]:
    return {f: getattr(message, f) for f in ("team", "user", "agent", "session")
            if message.HasField(f)}  # fmt: skip


PUBLIC_ROUTES: dict[str, Route] = {
    "Check": (lambda s, m: s.check(from_proto(m, CheckRequest)), pb.CheckResponse),
    "Reserve": (lambda s, m: s.reserve(from_proto(m, ReserveRequest)), pb.ReserveResponse),
    "Commit": (lambda s, m: s.commit(from_proto(m, CommitRequest)), pb.CommitResponse),
    "Release": (lambda s, m: s.release(from_proto(m, ReleaseRequest)), pb.ReleaseResponse),
    "GetBalance": (lambda s, m: s.balance(m.customer), pb.GetBalanceResponse),
    "GetBudgets": (lambda s, m: s.budgets(m.customer, **_subject(m)), pb.GetBudgetsResponse),
}
ADMIN_ROUTES: dict[str, Route] = {
    "UpsertCustomer": (
        lambda s, m: s.upsert_customer(
            m.customer, from_proto(m, UpsertCustomerRequest, without=_CUSTOMER)
        ),
        pb.UpsertCustomerResponse,
    ),
    "Grant": (
        lambda s, m: s.grant(m.customer, from_proto(m, GrantRequest, without=_CUSTOMER)),
        pb.GrantResponse,
    ),
    "SetBudget": (
        lambda s, m: s.set_budget(m.customer, from_proto(m, SetBudgetRequest, without=_CUSTOMER)),
        pb.SetBudgetResponse,
    ),
    "GetCustomer": (lambda s, m: s.balance(m.customer), pb.GetBalanceResponse),
    "IssueProxyKey": (
        lambda s, m: s.issue_proxy_key(
            m.customer, from_proto(m, IssueProxyKeyRequest, without=_CUSTOMER)
        ),
        pb.IssueProxyKeyResponse,
    ),
    "ListProxyKeys": (lambda s, m: s.proxy_keys(m.customer), pb.ListProxyKeysResponse),
    "RevokeProxyKey": (
        lambda s, m: s.revoke_proxy_key(m.customer, m.key_id),
        pb.RevokeProxyKeyResponse,
    ),
}


class Servicer:
    """A servicer whose methods are the routes; admin servicers also require the token."""

    def __init__(
        self,
        service: Service,
        routes: dict[str, Route],
        *,
        max_message_bytes: int,
        admin_token: str | None = None,
    ) -> None:
        self._service = service
        self._max_bytes = max_message_bytes
        self._token = admin_token.encode() if admin_token is not None else None
        for name, (call, answer) in routes.items():
            setattr(self, name, self._method(call, answer))

    def _authorize(self, context: grpc.aio.ServicerContext) -> None:
        if self._token is None:
            return
        metadata = dict(context.invocation_metadata() or ())
        header = str(metadata.get("authorization", ""))
        authorize(header, self._token, field="authorization", what="admin token")

    def _refused(self, code: str) -> None:
        self._service.metrics.request_errors.labels("grpc", code).inc()

    def _method(self, call: Call, answer: type[Message]) -> Any:
        async def method(request: Message, context: grpc.aio.ServicerContext) -> Message:
            try:
                self._authorize(context)
                if request.ByteSize() > self._max_bytes:
                    raise InvalidInput("request", f"is over {self._max_bytes} bytes; send less")
                remaining = context.time_remaining()
                if remaining is not None and remaining <= 0:
                    self._refused("deadline_exceeded")
                    await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline expired")
                result = await _guarded(call, self._service, request, context)
            except RequestError as error:
                self._refused(error.code)
                await context.abort_with_status(status_of(error))
            return to_proto(result, answer)

        return method
