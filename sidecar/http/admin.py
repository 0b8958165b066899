"""The admin API, on its own listener: customers, grants, budgets, proxy keys. Bearer token
required."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from sidecar.auth import authorize
from sidecar.http.codec import decode, json_response
from sidecar.http.errors import Handler, error_middleware
from sidecar.http.keys import ADMIN_TOKEN, MAX_BODY_BYTES, REQUEST_ERRORS, SERVICE
from sidecar.service import Service
from sidecar.wire import (
    GrantRequest,
    IssueProxyKeyRequest,
    SetBudgetRequest,
    UpsertCustomerRequest,
)

__all__ = ["admin_app"]

Operation = Callable[[Service, str, Any], Awaitable[Any]]


@web.middleware
async def _require_token(request: web.Request, handler: Handler) -> web.StreamResponse:
    header = request.headers.get("Authorization", "")
    authorize(header, request.app[ADMIN_TOKEN], field="Authorization", what="admin token")
    return await handler(request)


def _change(kind: type[Any], operation: Operation) -> Any:
    async def handler(request: web.Request) -> web.Response:
        body = decode(await request.read(), kind)
        customer = request.match_info["customer"]
        return json_response(await operation(request.app[SERVICE], customer, body))

    return handler


async def _state(request: web.Request) -> web.Response:
    return json_response(await request.app[SERVICE].balance(request.match_info["customer"]))


async def _proxy_keys(request: web.Request) -> web.Response:
    return json_response(await request.app[SERVICE].proxy_keys(request.match_info["customer"]))


async def _revoke_proxy_key(request: web.Request) -> web.Response:
    customer, key = request.match_info["customer"], request.match_info["key_id"]
    return json_response(await request.app[SERVICE].revoke_proxy_key(customer, key))


def admin_app(service: Service, token: str, *, max_body_bytes: int = 65_536) -> web.Application:
    middlewares: list[Any] = [error_middleware, _require_token]
    app = web.Application(client_max_size=max_body_bytes, middlewares=middlewares)
    app[SERVICE] = service
    app[REQUEST_ERRORS] = service.metrics.request_errors
    app[ADMIN_TOKEN] = token.encode()
    app[MAX_BODY_BYTES] = max_body_bytes
    base = "/admin/v1/customers/{customer}"
    app.router.add_put(base, _change(UpsertCustomerRequest, Service.upsert_customer))
    app.router.add_get(base, _state)
    app.router.add_post(f"{base}/grants", _change(GrantRequest, Service.grant))
    app.router.add_put(f"{base}/budgets", _change(SetBudgetRequest, Service.set_budget))
    keys = f"{base}/proxy-keys"
    app.router.add_post(keys, _change(IssueProxyKeyRequest, Service.issue_proxy_key))
    app.router.add_get(keys, _proxy_keys)
    app.router.add_delete(keys + "/{key_id}", _revoke_proxy_key)
    return app
