"""PostgreSQL access: the pool, the environment's schema, and the recorded catalogs.

Each environment (sidecar/environment.py) has a schema of its own: ``public`` for live, as
before environments, ``creditgate_<name>`` for any other; every connection's ``search_path``
is that one schema, so no query of a sandbox ledger can name a live table.

Times are ``TIMESTAMPTZ`` in the database and integer ms (UTC) in Python; both conversions are
exact integer arithmetic (no float seconds).
"""

from __future__ import annotations

from typing import Any, TypeAlias

import asyncpg
import msgspec
from asyncpg.pool import PoolConnectionProxy

from sidecar.catalog.model import Catalog
from sidecar.environment import LIVE
from sidecar.ledger.migrate import apply_migrations

__all__ = [
    "Connection",
    "Pool",
    "load_catalogs",
    "open_pool",
    "record_catalog",
    "schema",
]

Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"
Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"


async def _setup(connection: Any) -> None:
    # UTC for date_trunc and to_char; no NOTICE for staging tables that already exist.
    await connection.execute("SET TIME ZONE 'UTC'; SET client_min_messages = warning")


def schema(environment: str) -> str:
    """The PostgreSQL schema of ``environment``'s ledger."""
    return "public" if environment == LIVE else f"creditgate_{environment}"


async def open_pool(url: str, *, max_size: int = 8, environment: str = LIVE) -> Pool:
    """A connection pool on ``url`` in ``environment``'s schema, with every migration
    applied there (the schema created first)."""
    settings = {"search_path": schema(environment)}
    connection = await asyncpg.connect(url, server_settings=settings)
    try:
        await connection.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema(environment)}"')
        await apply_migrations(connection)
    finally:
        await connection.close()
    pool = await asyncpg.create_pool(
        url, min_size=1, max_size=max_size, init=_setup, server_settings=settings
    )
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
