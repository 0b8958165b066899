"""The schema: versioned migrations applied once, and an append-only ledger."""

from __future__ import annotations

import asyncpg
import pytest

from sidecar.ledger.db import Pool
from sidecar.ledger.migrate import apply_migrations, migrations

pytestmark = pytest.mark.postgres

TABLES = (
    "ledger_entries", "usage_events", "credit_grants", "budget_changes", "customer_changes",
    "catalogs", "unparsed_events",
)  # fmt: skip


def test_migrations_are_numbered_from_one_and_shipped_with_the_package() -> None:
    found = migrations()
    assert [m.version for m in found] == list(range(1, len(found) + 1))
    assert found[0].name == "init"


async def test_migrations_apply_once_and_are_recorded(database: str) -> None:
    connection = await asyncpg.connect(database)
    try:
        assert await apply_migrations(connection) == [m.version for m in migrations()]
        assert await apply_migrations(connection) == []  # a second start applies nothing
        rows = await connection.fetch("SELECT version, name FROM schema_migrations")
        assert [(r["version"], r["name"]) for r in rows] == [
            (m.version, m.name) for m in migrations()
        ]
    finally:
        await connection.close()


async def test_every_ledger_table_refuses_update_delete_and_truncate(pool: Pool) -> None:
    async with pool.acquire() as db:
        await db.execute(
            "INSERT INTO ledger_entries (event_id, seq, customer, kind, credit_type, grant_id,"
            " amount_nanos, ts) VALUES ('g:1', 0, 'acme', 'grant', 'paid', 'g_1', 5, now())"
        )
        for table in TABLES:
            for statement in (f"UPDATE {table} SET recorded_at = now()", f"DELETE FROM {table}",
                              f"TRUNCATE {table}"):  # fmt: skip
                with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                    await db.execute(statement)
        assert await db.fetchval("SELECT amount_nanos FROM ledger_entries") == 5


async def test_amounts_are_integers_and_the_kinds_a_closed_list(pool: Pool) -> None:
    async with pool.acquire() as db:
        kinds = await db.fetch(
            "SELECT table_name, column_name, data_type, numeric_scale "
            "FROM information_schema.columns "
            "WHERE column_name LIKE '%nanos' OR column_name LIKE '%femtos'"
        )
        assert kinds
        # bigint, or for sums of femtos that outgrow it, numeric without a fraction
        types = {(k["data_type"], k["numeric_scale"]) for k in kinds}
        assert types == {("bigint", 0), ("numeric", 0)}
        with pytest.raises(asyncpg.CheckViolationError):
            await db.execute(
                "INSERT INTO ledger_entries (event_id, seq, customer, kind, amount_nanos, ts)"
                " VALUES ('x', 0, 'acme', 'gift', 5, now())"
            )
