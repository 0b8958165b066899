"""The gRPC transport: thin adapters over the service layer, built from one table of routes.

Each route decodes the proto request into the wire struct, calls the same Service method the
HTTP handler calls, and encodes the wire answer back. Expired deadlines and oversized messages
are refused before anything moves; errors map to status in ``errors.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import grpc
from google.protobuf.message import Message

from sidecar.access import OPERATOR, Caller
from sidecar.auth import TokenCheck, authenticate
from sidecar.environment import METADATA
from sidecar.errors import InternalError, InvalidInput, RequestError
from sidecar.ledger.corrections import AdjustRequest, Corrections, RefundRequest
from sidecar.ledger.proposals import ApproveRequest, PricingDesk, ProposeRequest, RollbackRequest
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

__all__ = [
    "ADMIN_ROUTES",
    "LEDGER_ROUTES",
    "PRICING_ROUTES",
    "PUBLIC_ROUTES",
    "Servicer",
    "bearer",
    "sidecar_servicer",
]

log = logging.getLogger(__name__)
REQUEST_ID_HEADER = "x-request-id"

T = TypeVar("T")
Call = Callable[[T, Any, Any], Awaitable[Any]]
"""One route: the target (the sidecar's service, the ledger's corrections), the proto
request, and who calls."""


async def _guarded(
    call: Call[T],
    target: T,
    request: Message,
    caller: Caller,
    context: grpc.aio.ServicerContext,
) -> Any:
    """Run one operation; a bug leaves as InternalError, logged here with its trace and the
    caller's ``x-request-id``."""
    try:
        return await call(target, request, caller)
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


Route = tuple[Call[T], type[Message]]
_CUSTOMER = ("customer",)


def _subject(message: Any) -> dict[str, str]:
    return {f: getattr(message, f) for f in ("team", "user", "agent", "session")
            if message.HasField(f)}  # fmt: skip


PUBLIC_ROUTES: dict[str, Route[Service]] = {
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


def _change(operation: Callable[..., Awaitable[Any]], kind: type[Any]) -> Call[Any]:
    """An admin change: the customer, the request without it, and the caller."""
    return lambda s, m, c: operation(s, m.customer, from_proto(m, kind, without=_CUSTOMER), c)


ADMIN_ROUTES: dict[str, Route[Service]] = {
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


CallerOf = Callable[[grpc.aio.ServicerContext], Awaitable[Any]]
"""Who calls, from the call's metadata (a Caller, or the pricing API's Pricer); 401 or 403
when its token is missing or wrong."""


def bearer(token: str, check: TokenCheck, clock: Callable[[], int], *, what: str) -> CallerOf:
    """The operator with ``token`` (its ``what``), or a scoped admin token ``check`` reads,
    from the ``authorization`` metadata."""
    operator = token.encode()

    async def caller(context: grpc.aio.ServicerContext) -> Caller:
        metadata = dict(context.invocation_metadata() or ())
        header = str(metadata.get("authorization", ""))
        return await authenticate(
            header, operator, check, clock(), field="authorization", what=what
        )

    return caller


async def _operator(context: grpc.aio.ServicerContext) -> Caller:
    return OPERATOR


LEDGER_ROUTES: dict[str, Route[Corrections]] = {
    "Refund": (
        lambda k, m, c: k.refund(m.customer, from_proto(m, RefundRequest, without=_CUSTOMER), c),
        pb.RefundResponse,
    ),
    "Adjust": (
        lambda k, m, c: k.adjust(m.customer, from_proto(m, AdjustRequest, without=_CUSTOMER), c),
        pb.AdjustResponse,
    ),
}


PRICING_ROUTES: dict[str, Route[PricingDesk]] = {
    "SubmitProposal": (
        lambda d, m, c: d.submit(from_proto(m, ProposeRequest), c),
        pb.SubmitProposalResponse,
    ),
    "ApproveProposal": (
        lambda d, m, c: d.approve(from_proto(m, ApproveRequest), c),
        pb.ApproveProposalResponse,
    ),
    "RollbackCatalog": (
        lambda d, m, c: d.rollback(from_proto(m, RollbackRequest), c),
        pb.RollbackCatalogResponse,
    ),
}


class Servicer(Generic[T]):
    """A servicer whose methods are the routes over ``target``; ``caller`` says who calls
    (default: the operator, on the public service, which has no token) and ``refused`` counts
    each error by code. Every answer names ``environment`` in its trailing metadata."""

    def __init__(
        self,
        target: T,
        routes: dict[str, Route[T]],
        *,
        environment: str,
        max_message_bytes: int,
        caller: CallerOf = _operator,
        refused: Callable[[str], None] | None = None,
    ) -> None:
        self._target = target
        self._trailer = ((METADATA, environment),)
        self._max_bytes = max_message_bytes
        self._caller = caller
        self._count = refused
        for name, (call, answer) in routes.items():
            setattr(self, name, self._method(call, answer))

    def _refused(self, code: str) -> None:
        if self._count is not None:
            self._count(code)

    def _method(self, call: Call[T], answer: type[Message]) -> Any:
        async def method(request: Message, context: grpc.aio.ServicerContext) -> Message:
            context.set_trailing_metadata(self._trailer)
            try:
                caller = await self._caller(context)
                if request.ByteSize() > self._max_bytes:
                    raise InvalidInput("request", f"is over {self._max_bytes} bytes; send less")
                remaining = context.time_remaining()
                if remaining is not None and remaining <= 0:
                    self._refused("deadline_exceeded")
                    await context.abort(
                        grpc.StatusCode.DEADLINE_EXCEEDED, "deadline expired", self._trailer
                    )
                result = await _guarded(call, self._target, request, caller, context)
            except RequestError as error:
                self._refused(error.code)
                status = status_of(error)  # an abort's metadata replaces what was set before
                trailer = tuple(status.trailing_metadata) + self._trailer
                await context.abort(status.code, status.details, trailer)
            return to_proto(result, answer)

        return method


def sidecar_servicer(
    service: Service,
    routes: dict[str, Route[Service]],
    *,
    max_message_bytes: int,
    admin_token: str | None = None,
) -> Servicer[Service]:
    """The sidecar's public servicer, or with ``admin_token`` its admin one."""
    caller: CallerOf = _operator
    if admin_token is not None:
        caller = bearer(admin_token, service.tokens.check, service.clock, what="admin token")

    def count(code: str) -> None:
        service.metrics.request_errors.labels("grpc", code).inc()

    return Servicer(
        service, routes, environment=service.store.layout.environment,
        max_message_bytes=max_message_bytes, caller=caller, refused=count,
    )  # fmt: skip
