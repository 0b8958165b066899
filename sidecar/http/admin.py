"""The admin API, on its own listener: customers, grants, budgets, alerts, proxy keys, tokens.
Bearer token required: the operator's admin token, or a scoped admin token (access.py), whose
scope every operation checks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from sidecar.access import Caller
from sidecar.auth import authenticate
from sidecar.http.codec import decode, json_response
from sidecar.http.errors import Handler, error_middleware
from sidecar.http.keys import ADMIN_TOKEN, MAX_BODY_BYTES, REQUEST_ERRORS, SERVICE
from sidecar.service import Service
from sidecar.wire import (
    GrantRequest,
    IssueProxyKeyRequest,
    IssueTokenRequest,
    SetAlertsRequest,
    SetBudgetRequest,
    UpsertCustomerRequest,
)

__all__ = ["admin_app"]

Change = Callable[[Service, str, Any, Caller], Awaitable[Any]]
Read = Callable[[Service, str, Caller], Awaitable[Any]]
Named = Callable[[Service, str, str, Caller], Awaitable[Any]]
_CALLER = web.RequestKey("caller", Caller)


@web.middleware
async def _authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    service = request.app[SERVICE]
    request[_CALLER] = await authenticate(
        request.headers.get("Authorization", ""),
        request.app[ADMIN_TOKEN],
        service.tokens.check,
        service.clock(),
        field="Authorization",
        what="admin token",
    )
    return await handler(request)


def _change(kind: type[Any], operation: Change) -> Any:
    async def handler(request: web.Request) -> web.Response:
        body = decode(await request.read(), kind)
        customer = request.match_info["customer"]
        return json_response(
            await operation(request.app[SERVICE], customer, body, request[_CALLER])
        )

    return handler


def _read(operation: Read) -> Any:
    async def handler(request: web.Request) -> web.Response:
        customer = request.match_info["customer"]
        return json_response(await operation(request.app[SERVICE], customer, request[_CALLER]))

    return handler


def _named(operation: Named) -> Any:
    async def handler(request: web.Request) -> web.Response:
        customer, name = request.match_info["customer"], request.match_info["id"]
        answer = await operation(request.app[SERVICE], customer, name, request[_CALLER])
        return json_response(answer)

    return handler


def admin_app(service: Service, token: str, *, max_body_bytes: int = 65_536) -> web.Application:
    middlewares: list[Any] = [error_middleware, _authenticate]
    app = web.Application(client_max_size=max_body_bytes, middlewares=middlewares)
    app[SERVICE] = service
    app[REQUEST_ERRORS] = service.metrics.request_errors
    app[ADMIN_TOKEN] = token.encode()
    app[MAX_BODY_BYTES] = max_body_bytes
    base = "/admin/v1/customers/{customer}"
    app.router.add_put(base, _change(UpsertCustomerRequest, Service.upsert_customer))
    app.router.add_get(base, _read(Service.customer_state))
    app.router.add_post(f"{base}/grants", _change(GrantRequest, Service.grant))
    app.router.add_put(f"{base}/budgets", _change(SetBudgetRequest, Service.set_budget))
    app.router.add_put(f"{base}/alerts", _change(SetAlertsRequest, Service.set_alerts))
    app.router.add_get(f"{base}/alerts", _read(Service.alerts))
    keys = f"{base}/proxy-keys"
    app.router.add_post(keys, _change(IssueProxyKeyRequest, Service.issue_proxy_key))
    app.router.add_get(keys, _read(Service.proxy_keys))
    app.router.add_delete(keys + "/{id}", _named(Service.revoke_proxy_key))
    tokens = f"{base}/tokens"
    app.router.add_post(tokens, _change(IssueTokenRequest, Service.issue_token))
    app.router.add_get(tokens, _read(Service.admin_tokens))
    app.router.add_delete(tokens + "/{id}", _named(Service.revoke_token))
    return app
