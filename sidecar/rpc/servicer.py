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

from sidecar.access import OPERATOR, Caller
from sidecar.auth import authenticate
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
    IssueTokenRequest,
    ReleaseRequest,
    ReserveRequest,
    SetAlertsRequest,
    SetBudgetRequest,
    UpsertCustomerRequest,
)

__all__ = ["ADMIN_ROUTES", "PUBLIC_ROUTES", "Servicer"]

log = logging.getLogger(__name__)
REQUEST_ID_HEADER = "x-request-id"

Call = Callable[[Service, Any, Caller], Awaitable[Any]]
"""One route: the service, the proto request, and who calls (the operator on the public
service, which has no token)."""


async def _guarded(
    call: Call,
    service: Service,
    request: Message,
    caller: Caller,
    context: grpc.aio.ServicerContext,
) -> Any:
    """Run one operation; a bug leaves as InternalError, logged here with its trace and the
    caller's ``x-request-id``."""
    try:
        return await call(service, request, caller)
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
    "Check": (lambda s, m, _: s.check(from_proto(m, CheckRequest)), pb.CheckResponse),
    "Reserve": (lambda s, m, _: s.reserve(from_proto(m, ReserveRequest)), pb.ReserveResponse),
    "Commit": (lambda s, m, _: s.commit(from_proto(m, CommitRequest)), pb.CommitResponse),
    "Release": (lambda s, m, _: s.release(from_proto(m, ReleaseRequest)), pb.ReleaseResponse),
    "GetBalance": (lambda s, m, _: s.balance(m.customer), pb.GetBalanceResponse),
    "GetBudgets": (
        lambda s, m, _: s.budgets(m.customer, **_subject(m)),
        pb.GetBudgetsResponse,
    ),
}


def _change(operation: Callable[..., Awaitable[Any]], kind: type[Any]) -> Call:
    """An admin change: the customer, the request without it, and the caller."""
    return lambda s, m, c: operation(s, m.customer, from_proto(m, kind, without=_CUSTOMER), c)


ADMIN_ROUTES: dict[str, Route] = {
    "UpsertCustomer": (
        _change(Service.upsert_customer, UpsertCustomerRequest),
        pb.UpsertCustomerResponse,
    ),
    "Grant": (_change(Service.grant, GrantRequest), pb.GrantResponse),
    "SetBudget": (_change(Service.set_budget, SetBudgetRequest), pb.SetBudgetResponse),
    "GetCustomer": (lambda s, m, c: s.customer_state(m.customer, c), pb.GetBalanceResponse),
    "IssueProxyKey": (
        _change(Service.issue_proxy_key, IssueProxyKeyRequest),
        pb.IssueProxyKeyResponse,
    ),
    "ListProxyKeys": (lambda s, m, c: s.proxy_keys(m.customer, c), pb.ListProxyKeysResponse),
    "RevokeProxyKey": (
        lambda s, m, c: s.revoke_proxy_key(m.customer, m.key_id, c),
        pb.RevokeProxyKeyResponse,
    ),
    "SetAlerts": (_change(Service.set_alerts, SetAlertsRequest), pb.SetAlertsResponse),
    "ListAlerts": (lambda s, m, c: s.alerts(m.customer, c), pb.ListAlertsResponse),
    "IssueToken": (_change(Service.issue_token, IssueTokenRequest), pb.IssueTokenResponse),
    "ListTokens": (lambda s, m, c: s.admin_tokens(m.customer, c), pb.ListTokensResponse),
    "RevokeToken": (lambda s, m, c: s.revoke_token(m.customer, m.id, c), pb.RevokeTokenResponse),
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

    async def _caller(self, context: grpc.aio.ServicerContext) -> Caller:
        if self._token is None:
            return OPERATOR
        metadata = dict(context.invocation_metadata() or ())
        header = str(metadata.get("authorization", ""))
        service = self._service
        return await authenticate(
            header, self._token, service.tokens.check, service.clock(),
            field="authorization", what="admin token",
        )  # fmt: skip

    def _refused(self, code: str) -> None:
        self._service.metrics.request_errors.labels("grpc", code).inc()

    def _method(self, call: Call, answer: type[Message]) -> Any:
        async def method(request: Message, context: grpc.aio.ServicerContext) -> Message:
            try:
                caller = await self._caller(context)
                if request.ByteSize() > self._max_bytes:
                    raise InvalidInput("request", f"is over {self._max_bytes} bytes; send less")
                remaining = context.time_remaining()
                if remaining is not None and remaining <= 0:
                    self._refused("deadline_exceeded")
                    await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline expired")
                result = await _guarded(call, self._service, request, caller, context)
            except RequestError as error:
                self._refused(error.code)
                await context.abort_with_status(status_of(error))
            return to_proto(result, answer)

        return method
