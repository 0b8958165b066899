"""The public API: ``/v1/check``, ``/v1/reserve``, ``/v1/commit``, ``/v1/release``,
``/v1/balance``, ``/v1/budgets``, and the probes ``/healthz``, ``/readyz``, ``/metrics``.
Each handler only adapts."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from sidecar.errors import InvalidInput, StoreError
from sidecar.http.codec import decode, json_response
from sidecar.http.errors import error_middleware
from sidecar.http.keys import MAX_BODY_BYTES, REQUEST_ERRORS, SERVICE
from sidecar.http.probes import Readiness, add_probes
from sidecar.service import Service
from sidecar.wire import CheckRequest, CommitRequest, ReleaseRequest, ReserveRequest

__all__ = ["api_app", "readiness"]

_POSTS: tuple[tuple[str, type[Any], Callable[[Service, Any], Awaitable[Any]]], ...] = (
    ("/v1/check", CheckRequest, Service.check),
    ("/v1/reserve", ReserveRequest, Service.reserve),
    ("/v1/commit", CommitRequest, Service.commit),
    ("/v1/release", ReleaseRequest, Service.release),
)
_SUBJECT = ("team", "user", "agent", "session")


def _post(kind: type[Any], operation: Callable[[Service, Any], Awaitable[Any]]) -> Any:
    async def handler(request: web.Request) -> web.Response:
        body = decode(await request.read(), kind)
        return json_response(await operation(request.app[SERVICE], body))

    return handler


def _customer(request: web.Request) -> str:
    customer = request.query.get("customer")
    if not customer:
        raise InvalidInput("customer", f"is required: {request.path}?customer=<id>")
    return customer


async def _balance(request: web.Request) -> web.Response:
    return json_response(await request.app[SERVICE].balance(_customer(request)))


async def _budgets(request: web.Request) -> web.Response:
    subject = {field: request.query[field] for field in _SUBJECT if field in request.query}
    return json_response(await request.app[SERVICE].budgets(_customer(request), **subject))


def readiness(service: Service) -> Readiness:
    """Ready when Redis answers; the body names the catalog in force."""

    async def ready() -> tuple[bool, dict[str, Any]]:
        try:
            await service.store.ping()
        except StoreError as error:
            return False, {"status": "not_ready", "reason": str(error)}
        return True, {"status": "ready", "catalog_version": service.catalog.version}

    return ready


def api_app(service: Service, *, max_body_bytes: int = 65_536) -> web.Application:
    app = web.Application(client_max_size=max_body_bytes, middlewares=[error_middleware])
    app[SERVICE] = service
    app[REQUEST_ERRORS] = service.metrics.request_errors
    app[MAX_BODY_BYTES] = max_body_bytes
    for path, kind, operation in _POSTS:
        app.router.add_post(path, _post(kind, operation))
    app.router.add_get("/v1/balance", _balance)
    app.router.add_get("/v1/budgets", _budgets)
    add_probes(app, service.metrics.registry, readiness(service))
    return app
