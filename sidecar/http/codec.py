"""JSON bodies in and out with msgspec; decode errors name the exact field."""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec
from aiohttp import web

from sidecar.errors import InvalidInput
from sidecar.locate import locate

__all__ = ["decode", "json_response"]

T = TypeVar("T")
_encoder = msgspec.json.Encoder()

MAX_DEPTH = 32
"""Deepest nesting of arrays and objects a request body may have: every request's shape is
at most a few levels deep, and locating a bad field walks the body recursively."""
_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"')
_OPEN, _CLOSE = b"[{", b"]}"


def _depth(body: bytes) -> int:
    """How deep arrays and objects nest in ``body`` (strings skipped), without recursion."""
    brackets = _STRINGS.sub(b"", body).translate(None, bytes(set(range(256)) - set(b"[]{}")))
    depth = deepest = 0
    for byte in brackets:
        depth += 1 if byte in _OPEN else -1
        deepest = max(deepest, depth)
    return deepest


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
        if (depth := _depth(body)) > MAX_DEPTH:
            raise InvalidInput(
                "body", f"nests {depth} levels deep; send at most {MAX_DEPTH}"
            ) from None
        path, problem = locate(msgspec.json.decode(body), kind)
        raise InvalidInput(path or "body", _problem(problem or str(error))) from None
    except msgspec.DecodeError as error:
        raise InvalidInput("body", f"is not valid JSON ({error}); send a JSON object") from None


def json_response(value: Any, status: int = 200) -> web.Response:
    return web.Response(body=_encoder.encode(value), status=status, content_type="application/json")
