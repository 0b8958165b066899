"""PostgreSQL access: the pool, exact time conversions, and the recorded catalogs.

Times are ``TIMESTAMPTZ`` in the database and integer ms (UTC) in Python; both conversions are
exact integer arithmetic (no float seconds).
"""

from __future__ import annotations

from typing import Any, TypeAlias

import asyncpg
import msgspec
from asyncpg.pool import PoolConnectionProxy

from sidecar.catalog.model import Catalog
from sidecar.ledger.migrate import apply_migrations

__all__ = [
    "Connection",
    "Pool",
    "load_catalogs",
    "open_pool",
    "record_catalog",
]

Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"
Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"


async def _setup(connection: Any) -> None:
    # UTC for date_trunc and to_char; no NOTICE for staging tables that already exist.
    await connection.execute("SET TIME ZONE 'UTC'; SET client_min_messages = warning")


async def open_pool(url: str, *, max_size: int = 8) -> Pool:
    """A connection pool on ``url``, with every migration applied."""
    connection = await asyncpg.connect(url)
    try:
        await apply_migrations(connection)
    finally:
        await connection.close()
    pool = await asyncpg.create_pool(url, min_size=1, max_size=max_size, init=_setup)
    assert pool is not None
    return pool


async def record_catalog(connection: Connection, catalog: Catalog) -> None:
    """Keep the catalog under its version, so that its prices outlive the file."""
    await connection.execute(
        "INSERT INTO catalogs (version, name, document) VALUES ($1, $2, $3::jsonb) "
        "ON CONFLICT (version) DO NOTHING",
        catalog.version,
        catalog.name,
        msgspec.json.encode(catalog).decode(),
    )


async def load_catalogs(connection: Connection) -> dict[str, Catalog]:
    """Every recorded catalog by version."""
    rows = await connection.fetch("SELECT version, document::text AS document FROM catalogs")
    return {row["version"]: msgspec.json.decode(row["document"], type=Catalog) for row in rows}
