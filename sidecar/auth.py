"""Bearer tokens, checked in constant time; one rule for every listener that needs a token."""

from __future__ import annotations

import hmac

from sidecar.errors import PermissionDenied, Unauthenticated

__all__ = ["authorize"]


def authorize(header: str, expected: bytes, *, field: str, what: str) -> None:
    """Raise Unauthenticated without ``Bearer <token>``, PermissionDenied with a wrong one."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated(field, f"send {field}: Bearer <{what}>")
    if not hmac.compare_digest(token.encode(), expected):
        raise PermissionDenied(field, f"the {what} is wrong")
