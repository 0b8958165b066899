"""The ledger follows catalog changes too: a new version in the file is recorded in
PostgreSQL, so the events the sidecars price with it resolve to their prices."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest
import yaml

from sidecar.catalog import load_catalog
from sidecar.ledger.server import Ledger
from sidecar.ledger.settings import LedgerSettings
from sidecar.store.redis_store import RedisStore
from tests.ledger.conftest import CATALOG

pytestmark = [pytest.mark.redis, pytest.mark.postgres]


async def test_a_changed_catalog_is_recorded_under_its_version(
    tmp_path: Path, redis_url: str, database: str, store: RedisStore
) -> None:
    file = tmp_path / "catalog.yaml"
    file.write_text(CATALOG.read_text())
    settings = LedgerSettings(
        catalog=str(file), redis=redis_url, database_url=database, catalog_reload_ms=20
    )
    ledger = Ledger(settings)
    await ledger.start()
    try:
        first = ledger.catalog.version
        data = yaml.safe_load(CATALOG.read_text())
        data["name"] = "renamed"
        file.write_text(yaml.safe_dump(data))
        second = load_catalog(file).version
        async with asyncio.timeout(5):
            while ledger.catalog.version != second:
                await asyncio.sleep(0.02)
    finally:
        await ledger.stop()
    connection = await asyncpg.connect(database)
    try:
        versions = {
            row["version"] for row in await connection.fetch("SELECT version FROM catalogs")
        }
    finally:
        await connection.close()
    assert versions == {first, second}
    reloads = ledger.metrics.registry.get_sample_value(
        "creditgate_ledger_catalog_reloads_total", {"result": "applied"}
    )
    assert reloads == 1
