"""A small typed async client for the sidecar, over HTTP or gRPC, with the same methods.

    async with GrpcClient("127.0.0.1:7072") as creditgate:
        answer = await creditgate.reserve(ReserveRequest(customer="acme", ...))

Requests and answers are the wire structs of ``sidecar.wire``; errors are raised as the same
typed ``RequestError`` subclasses the sidecar raises (InvalidInput, NotFound, ...), with the
field at fault.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self, TypeVar, cast
from urllib.parse import quote, urlencode

import aiohttp
import grpc
import msgspec
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from sidecar.errors import (
    InvalidInput,
    NotFound,
    OutcomeUnknown,
    PermissionDenied,
    RequestError,
    StoreError,
    Unauthenticated,
)
from sidecar.rpc.convert import from_proto, to_proto
from sidecar.rpc.errors import STATUS
from sidecar.rpc.gen.creditgate.v1 import creditgate_pb2 as pb
from sidecar.rpc.gen.creditgate.v1 import creditgate_pb2_grpc as pb_grpc
from sidecar.wire import (
    BalanceResponse,
    BudgetsResponse,
    CheckRequest,
    CheckResponse,
    CommitRequest,
    CommitResponse,
    CustomerResponse,
    GrantRequest,
    GrantResponse,
    ReleaseRequest,
    ReleaseResponse,
    ReserveRequest,
    ReserveResponse,
    SetBudgetRequest,
    SetBudgetResponse,
    UpsertCustomerRequest,
)

__all__ = ["GrpcClient", "HttpClient"]

T = TypeVar("T")
_ERRORS: dict[str, type[RequestError]] = {
    cls.code: cls for cls in (InvalidInput, NotFound, Unauthenticated, PermissionDenied)
}
_GRPC_CODES = {status: code for code, status in STATUS.items()}
_encoder = msgspec.json.Encoder()


def _error(code: str, field: str, message: str) -> RequestError:
    if code == StoreError.code:
        return StoreError(message)
    if code == OutcomeUnknown.code:
        return OutcomeUnknown(message)
    return _ERRORS.get(code, InvalidInput)(field, message)


class _Closing:
    """``async with`` closes the client."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, *_: type[BaseException] | BaseException | TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        raise NotImplementedError


class HttpClient(_Closing):
    """The sidecar over HTTP; ``admin_url`` and ``admin_token`` for the admin operations."""

    def __init__(
        self, url: str, *, admin_url: str | None = None, admin_token: str | None = None
    ) -> None:
        self._url = url.rstrip("/")
        self._admin_url = (admin_url or "").rstrip("/")
        self._admin_headers = {"Authorization": f"Bearer {admin_token}"} if admin_token else {}
        self._session = aiohttp.ClientSession()

    async def close(self) -> None:
        await self._session.close()

    async def _send(
        self, method: str, url: str, body: Any, kind: type[T], headers: dict[str, str] | None = None
    ) -> T:
        data = None if body is None else _encoder.encode(body)
        async with self._session.request(method, url, data=data, headers=headers) as response:
            payload = await response.read()
        if response.status != 200:
            error = msgspec.json.decode(payload)["error"]
            raise _error(error["code"], error["field"], error["message"])
        return msgspec.json.decode(payload, type=kind)

    async def check(self, request: CheckRequest) -> CheckResponse:
        return await self._send("POST", f"{self._url}/v1/check", request, CheckResponse)

    async def reserve(self, request: ReserveRequest) -> ReserveResponse:
        return await self._send("POST", f"{self._url}/v1/reserve", request, ReserveResponse)

    async def commit(self, request: CommitRequest) -> CommitResponse:
        return await self._send("POST", f"{self._url}/v1/commit", request, CommitResponse)

    async def release(self, request: ReleaseRequest) -> ReleaseResponse:
        return await self._send("POST", f"{self._url}/v1/release", request, ReleaseResponse)

    async def balance(self, customer: str) -> BalanceResponse:
        url = f"{self._url}/v1/balance?{urlencode({'customer': customer})}"
        return await self._send("GET", url, None, BalanceResponse)

    async def budgets(self, customer: str, **subject: str) -> BudgetsResponse:
        query = urlencode({"customer": customer, **subject})
        return await self._send("GET", f"{self._url}/v1/budgets?{query}", None, BudgetsResponse)

    def _admin(self, customer: str, tail: str = "") -> str:
        return f"{self._admin_url}/admin/v1/customers/{quote(customer, safe='')}{tail}"

    async def upsert_customer(
        self, customer: str, request: UpsertCustomerRequest
    ) -> CustomerResponse:
        return await self._send(
            "PUT", self._admin(customer), request, CustomerResponse, self._admin_headers
        )

    async def grant(self, customer: str, request: GrantRequest) -> GrantResponse:
        return await self._send(
            "POST", self._admin(customer, "/grants"), request, GrantResponse, self._admin_headers
        )

    async def set_budget(self, customer: str, request: SetBudgetRequest) -> SetBudgetResponse:
        return await self._send(
            "PUT",
            self._admin(customer, "/budgets"),
            request,
            SetBudgetResponse,
            self._admin_headers,
        )


class GrpcClient(_Closing):
    """The sidecar over gRPC; ``admin_target`` and ``admin_token`` for the admin operations."""

    def __init__(
        self,
        target: str,
        *,
        admin_target: str | None = None,
        admin_token: str | None = None,
        timeout_s: float | None = 5.0,
    ) -> None:
        self._channel = grpc.aio.insecure_channel(target)
        self._stub = pb_grpc.CreditgateServiceStub(self._channel)  # type: ignore[no-untyped-call]
        self._admin_channel = grpc.aio.insecure_channel(admin_target) if admin_target else None
        self._admin_stub = (
            pb_grpc.CreditgateAdminServiceStub(self._admin_channel)  # type: ignore[no-untyped-call]
            if self._admin_channel is not None
            else None
        )
        self._metadata = (("authorization", f"Bearer {admin_token}"),) if admin_token else ()
        self._timeout_s = timeout_s

    async def close(self) -> None:
        await self._channel.close()
        if self._admin_channel is not None:
            await self._admin_channel.close()

    async def _call(self, method: Any, message: Any, kind: type[T], *, admin: bool = False) -> T:
        try:
            answer = await method(
                message, timeout=self._timeout_s, metadata=self._metadata if admin else ()
            )
        except grpc.aio.AioRpcError as error:
            raise _grpc_error(error) from None
        return from_proto(answer, kind)

    async def check(self, request: CheckRequest) -> CheckResponse:
        return await self._call(self._stub.Check, to_proto(request, pb.CheckRequest), CheckResponse)

    async def reserve(self, request: ReserveRequest) -> ReserveResponse:
        return await self._call(
            self._stub.Reserve, to_proto(request, pb.ReserveRequest), ReserveResponse
        )

    async def commit(self, request: CommitRequest) -> CommitResponse:
        return await self._call(
            self._stub.Commit, to_proto(request, pb.CommitRequest), CommitResponse
        )

    async def release(self, request: ReleaseRequest) -> ReleaseResponse:
        return await self._call(
            self._stub.Release, to_proto(request, pb.ReleaseRequest), ReleaseResponse
        )

    async def balance(self, customer: str) -> BalanceResponse:
        return await self._call(
            self._stub.GetBalance, pb.GetBalanceRequest(customer=customer), BalanceResponse
        )

    async def budgets(self, customer: str, **subject: str) -> BudgetsResponse:
        message = pb.GetBudgetsRequest(customer=customer, **subject)
        return await self._call(self._stub.GetBudgets, message, BudgetsResponse)

    def _admin(self) -> Any:
        if self._admin_stub is None:
            raise RuntimeError("pass admin_target to GrpcClient for the admin operations")
        return self._admin_stub

    async def upsert_customer(
        self, customer: str, request: UpsertCustomerRequest
    ) -> CustomerResponse:
        message = to_proto(request, pb.UpsertCustomerRequest, customer=customer)
        answer = await self._call(self._admin().UpsertCustomer, message, dict, admin=True)
        return CustomerResponse(customer=answer["customer"], plan=answer["plan"], result="upserted")

    async def grant(self, customer: str, request: GrantRequest) -> GrantResponse:
        message = to_proto(request, pb.GrantRequest, customer=customer)
        return await self._call(self._admin().Grant, message, GrantResponse, admin=True)

    async def set_budget(self, customer: str, request: SetBudgetRequest) -> SetBudgetResponse:
        message = to_proto(request, pb.SetBudgetRequest, customer=customer)
        return await self._call(self._admin().SetBudget, message, SetBudgetResponse, admin=True)


def _grpc_error(error: grpc.aio.AioRpcError) -> Exception:
    code = _GRPC_CODES.get(error.code())
    if code is None:
        return cast(Exception, error)  # DEADLINE_EXCEEDED and the like: grpc's own error
    field, message = "", error.details() or ""
    status = rpc_status.from_call(error)
    for detail in status.details if status is not None else ():
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad) and bad.field_violations:
            field, message = bad.field_violations[0].field, bad.field_violations[0].description
    return _error(code, field, message)
