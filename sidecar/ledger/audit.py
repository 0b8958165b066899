"""Audit entries of the changes the ledger service makes itself (webhook endpoints,
corrections): written to ``audit_log`` directly, since no stream carries them."""

from __future__ import annotations

from typing import Any

import msgspec

from sidecar.ledger.db import Connection

__all__ = ["record_audit"]


async def record_audit(
    connection: Connection, customer: str | None, actor: str, action: str, detail: dict[str, Any]
) -> None:
    """One entry of ``customer``'s trail (none for the operator's own endpoints); ``detail``
    names the change's ``id``, which makes the entry's, so a retry records it once."""
    if customer is None:
        return
    await connection.execute(
        "INSERT INTO audit_log (event_id, customer, actor, action, team, detail, ts, stream_ms, "
        "stream_seq) VALUES ($1, $2, $3, $4, NULL, $5::jsonb, now(), 0, 0) "
        "ON CONFLICT DO NOTHING",
        f"audit:{action}:{detail['id']}", customer, actor, action,
        msgspec.json.encode(detail).decode(),
    )  # fmt: skip
