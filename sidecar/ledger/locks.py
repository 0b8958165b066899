"""PostgreSQL advisory locks of one environment: a lock key is database-wide, so each is
offset by a hash of the connection's schema (ledger/db.py, ``schema``), and a sandbox ledger
never waits on the live one's locks; live's keys are the bare ones, as before environments."""

from __future__ import annotations

from typing import Any

__all__ = ["lock", "unlock", "xact_lock"]

_KEY = (
    "($1::bigint # CASE current_schema() WHEN 'public' THEN 0 ELSE hashtext(current_schema()) END)"
)


async def xact_lock(connection: Any, key: int) -> None:
    """Within a transaction: wait for ``key`` (released at its end)."""
    await connection.execute(f"SELECT pg_advisory_xact_lock{_KEY}", key)


async def lock(connection: Any, key: int) -> None:
    """Wait for ``key``, held until ``unlock`` or the session's end."""
    await connection.execute(f"SELECT pg_advisory_lock{_KEY}", key)


async def unlock(connection: Any, key: int) -> None:
    await connection.execute(f"SELECT pg_advisory_unlock{_KEY}", key)
