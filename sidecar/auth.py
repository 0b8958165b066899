"""Bearer tokens, checked in constant time; one rule for every listener that needs a token."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from sidecar.access import OPERATOR, Caller
from sidecar.errors import PermissionDenied, Unauthenticated
from sidecar.service.keys import ADMIN_TOKENS, KeyRecord, caller_of

TokenCheck = Callable[[str, int], Awaitable[KeyRecord]]
"""The scoped admin token of an Authorization header at a time (Keyring.check)."""

__all__ = ["TokenCheck", "authenticate", "authorize"]


def authorize(header: str, expected: bytes, *, field: str, what: str) -> None:
    """Raise Unauthenticated without ``Bearer <token>``, PermissionDenied with a wrong one."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated(field, f"send {field}: Bearer <{what}>")
    if not hmac.compare_digest(token.encode(), expected):
        raise PermissionDenied(field, f"the {what} is wrong")


async def authenticate(
    header: str, operator: bytes, check: TokenCheck, now_ms: int, *, field: str, what: str
) -> Caller:
    """The caller of an admin API: the operator (its ``what``, e.g. the admin token), or the
    holder of a scoped admin token (401 when unknown, revoked or expired)."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.startswith(ADMIN_TOKENS.prefix):
        return caller_of(await check(header, now_ms))
    authorize(header, operator, field=field, what=what)
    return OPERATOR
