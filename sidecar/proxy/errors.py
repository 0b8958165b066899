"""Errors in the OpenAI SDKs' own terms: ``{"error": {"message", "type", "param", "code"}}``
with the status the SDKs raise their usual exceptions on (401 AuthenticationError, 403
PermissionDeniedError, 404 NotFoundError, 429 RateLimitError, 400 BadRequestError). A denial
carries Creditgate's reason and scope in ``error.code`` and ``error.param``, and in the
``X-Creditgate-Reason`` and ``X-Creditgate-Scope`` headers."""

from __future__ import annotations

from aiohttp import web

from sidecar.errors import RequestError
from sidecar.http.codec import json_response
from sidecar.wire import ReserveResponse

__all__ = ["DENIAL_STATUS", "denial", "openai_error", "request_error", "upstream_failed"]

DENIAL_STATUS = {
    "insufficient_credits": 429,
    "budget_exceeded": 429,
    "session_budget_exceeded": 429,
    "quota_exceeded": 429,
    "rate_limited": 429,
    "feature_not_entitled": 403,
    "model_not_allowed": 403,
    "unknown_feature": 403,
    "unknown_customer": 403,
    "store_unavailable": 503,
}
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "insufficient_quota",
    500: "server_error",
    502: "upstream_error",
    503: "service_unavailable",
    504: "upstream_timeout",
}
_REQUEST_STATUS = {
    "invalid_request": 400,
    "unauthenticated": 401,
    "permission_denied": 401,  # an unknown or revoked proxy key: the SDK's AuthenticationError
    "forbidden": 403,  # a header that widens the key (proxy/subject.py)
    "not_found": 404,
    "store_unavailable": 503,
    "outcome_unknown": 503,
    "internal": 500,
}


def openai_error(
    status: int,
    message: str,
    *,
    code: str | None = None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    error: dict[str, object] = {
        "message": message, "type": _TYPES.get(status, "error"), "param": param, "code": code,
    }  # fmt: skip
    response = json_response({"error": error}, status)
    response.headers.update(headers or {})
    return response


def request_error(error: RequestError) -> web.Response:
    status = _REQUEST_STATUS[error.code]
    message = f"{error.field}: {error.message}" if error.field else error.message
    return openai_error(status, message, code=error.code, param=error.field or None)


def upstream_failed(name: str, error: BaseException) -> web.Response:
    """The upstream could not be reached, or timed out, before it answered."""
    timeout = isinstance(error, TimeoutError)
    return openai_error(
        504 if timeout else 502,
        f"upstream {name} {'timed out' if timeout else 'unreachable'}: {error!r}",
        code="upstream_timeout" if timeout else "upstream_unreachable",
    )


def denial(answer: ReserveResponse) -> web.Response:
    status = DENIAL_STATUS[answer.reason]
    scope = f" ({answer.scope})" if answer.scope else ""
    headers: dict[str, str] = {"X-Creditgate-Reason": answer.reason}
    if answer.scope:
        headers["X-Creditgate-Scope"] = answer.scope
    return openai_error(
        status,
        f"refused by Creditgate: {answer.reason}{scope}",
        code=answer.reason,
        param=answer.scope,
        headers=headers,
    )
