"""Versioned schema migrations: ``migrations/NNNN_name.sql``, applied in order at start.

Each file runs once, in its own transaction, and is recorded in ``schema_migrations``. An
advisory lock makes concurrent starts (several ledger workers) apply each file exactly once.
"""

from __future__ import annotations

import re
from importlib import resources

import asyncpg

from sidecar.ledger.locks import lock, unlock

__all__ = ["Migration", "apply_migrations", "migrations"]

_LOCK_ID = 0x6C6564676572  # "ledger"
_NAME = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")


class Migration:
    __slots__ = ("name", "sql", "version")

    def __init__(self, version: int, name: str, sql: str) -> None:
        self.version = version
        self.name = name
        self.sql = sql


def migrations() -> list[Migration]:
    """Every migration shipped in the package, by version; versions must be 1, 2, 3, ..."""
    found = []
    for item in (resources.files("sidecar.ledger") / "migrations").iterdir():
        match = _NAME.fullmatch(item.name)
        if match:
            found.append(Migration(int(match[1]), match[2], item.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise RuntimeError(
            f"migrations must be numbered 0001, 0002, ...: {[m.name for m in found]}"
        )
    return found


async def apply_migrations(connection: asyncpg.Connection[asyncpg.Record]) -> list[int]:
    """Apply every migration not yet applied; returns the versions applied now."""
    applied_now: list[int] = []
    await lock(connection, _LOCK_ID)
    try:
        await connection.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
            " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        done = {
            row["version"]
            for row in await connection.fetch("SELECT version FROM schema_migrations")
        }
        for migration in migrations():
            if migration.version in done:
                continue
            async with connection.transaction():
                await connection.execute(migration.sql)
                await connection.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    migration.version,
                    migration.name,
                )
            applied_now.append(migration.version)
    finally:
        await unlock(connection, _LOCK_ID)
    return applied_now
