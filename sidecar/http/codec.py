"""JSON bodies in and out with msgspec; decode errors name the exact field."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec
from aiohttp import web

from sidecar.errors import InvalidInput
from sidecar.locate import locate

__all__ = ["decode", "json_response"]

T = TypeVar("T")
_encoder = msgspec.json.Encoder()


def _problem(problem: str) -> str:
    if problem.startswith("unknown field"):
        return "is not a field of this request; remove it"
    if problem == "missing required field":
        return "is required"
    return problem


def decode(body: bytes, kind: type[T]) -> T:
    """Decode a request body into ``kind``; InvalidInput names the field and the fix."""
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as error:
        path, problem = locate(msgspec.json.decode(body), kind)
        raise InvalidInput(path or "body", _problem(problem or str(error))) from None
    except msgspec.DecodeError as error:
        raise InvalidInput("body", f"is not valid JSON ({error}); send a JSON object") from None


def json_response(value: Any, status: int = 200) -> web.Response:
    return web.Response(body=_encoder.encode(value), status=status, content_type="application/json")
