"""The audit trail: every admin change, with who made it (the operator or a scoped token's
id), appended to the customer's stream right after the change and stored by the ledger
(``audit_log``) for the customer's own admins to read.

An entry's id is derived from what it records, so a retried request that changes nothing new
(a second issue of the same key, a second revoke) is kept once by the ledger.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

from sidecar.access import Caller

__all__ = ["audit_fields"]

_encode = msgspec.json.Encoder(order="sorted").encode


def audit_fields(
    caller: Caller,
    customer: str,
    action: str,
    detail: dict[str, Any],
    now_ms: int,
    *,
    team: str | None = None,
    once: str | None = None,
) -> dict[str, str]:
    """The stream entry of one change. ``once``: the id of a change that happens only once
    (an issue, a revoke), so that its retries name the same entry; else the entry is this
    request's (its customer and time are part of the id: the same change made for two
    customers in one millisecond is two entries)."""
    text = _encode(detail).decode()
    basis = once if once is not None else f"{customer}\0{caller.actor}\0{text}\0{now_ms}"
    digest = hashlib.sha256(f"{action}\0{basis}".encode()).hexdigest()[:32]
    return {
        "kind": "audit",
        "event_id": f"audit:{digest}",
        "customer": customer,
        "actor": caller.actor,
        "action": action,
        "team": team or "",
        "detail": text,
        "ts": str(now_ms),
    }
