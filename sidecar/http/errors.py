"""Errors to HTTP status, in one place: ``{"error": {"code", "field", "message"}}``."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from sidecar.errors import InternalError, RequestError
from sidecar.http.codec import json_response
from sidecar.http.keys import MAX_BODY_BYTES, REQUEST_ERRORS

__all__ = ["STATUS", "error_middleware", "error_response"]

STATUS = {
    "invalid_request": 400,
    "unauthenticated": 401,
    "permission_denied": 403,
    "not_found": 404,
    "conflict": 409,
    "store_unavailable": 503,
    "outcome_unknown": 503,
    "internal": 500,
}
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(status: int, code: str, field: str, message: str) -> web.Response:
    return json_response({"error": {"code": code, "field": field, "message": message}}, status)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except RequestError as error:
        status, code, field, message = STATUS[error.code], error.code, error.field, error.message
    except web.HTTPException as error:
        if error.status < 400:
            raise
        status, code = error.status, _HTTP_CODES.get(error.status, "invalid_request")
        field = "body" if error.status == 413 else ""
        message = (
            error.reason
            if error.status != 413
            else (f"request body is over {request.app[MAX_BODY_BYTES]} bytes; send less")
        )
    except Exception:  # a bug: logged with its trace, answered without it
        context = {"path": request.path, "request_id": request.headers.get("X-Request-Id")}
        log.exception("unhandled error", extra=context)
        internal = InternalError()
        status, code, field, message = STATUS[internal.code], internal.code, "", internal.message
    counter = request.app.get(REQUEST_ERRORS)
    if counter is not None:
        counter.labels("http", code).inc()
    return error_response(status, code, field, message)
