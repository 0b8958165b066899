"""Catalog hot reload: a valid change is applied whole, an invalid or missing file is rejected
with one log line and the catalog in force stays; a ConfigMap-style symlink swap is seen; a
running sidecar picks a change up on its own."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from sidecar.catalog import Catalog, load_catalog
from sidecar.reload import CatalogWatcher
from sidecar.server import catalog_watcher
from sidecar.service import Service
from sidecar.wire import CheckRequest, ReserveRequest
from tests.conftest import EXAMPLE
from tests.http.conftest import Api, StartSidecar

pytestmark = pytest.mark.redis


def _catalog(**plan_changes: Any) -> str:
    """The example catalog with the pro plan's chat limit changed (a new version)."""
    data = yaml.safe_load(EXAMPLE.read_text())
    data["plans"]["pro"]["features"]["chat"].update(plan_changes)
    return yaml.safe_dump(data, sort_keys=False)


@pytest.fixture
def file(tmp_path: Path) -> Path:
    path = tmp_path / "catalog.yaml"
    path.write_text(EXAMPLE.read_text())
    return path


@pytest.fixture
def watcher(file: Path, service: Service) -> CatalogWatcher:
    return catalog_watcher(service, str(file), interval_s=3600)


def _reloads(service: Service, result: str) -> float:
    value = service.metrics.registry.get_sample_value(
        "creditgate_catalog_reloads_total", {"result": result}
    )
    return value or 0.0


async def test_an_unchanged_file_is_not_parsed_again(watcher: CatalogWatcher) -> None:
    assert await watcher.check() == "same_version"
    assert await watcher.check() == "unchanged"


async def test_a_valid_change_is_applied_and_answers_name_the_new_version(
    file: Path, watcher: CatalogWatcher, service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    old = service.catalog.version
    await watcher.check()
    file.write_text(_catalog(limit=1234))
    caplog.set_level(logging.INFO, logger="sidecar.reload")
    assert await watcher.check() == "applied"
    new = service.catalog.version
    assert new == load_catalog(file).version != old
    answer = await service.check(CheckRequest(customer="nobody", feature="chat"))
    assert answer.catalog_version == new
    (record,) = caplog.records
    assert record.getMessage() == "catalog reloaded"
    assert (vars(record)["catalog_version"], vars(record)["previous_version"]) == (new, old)
    assert _reloads(service, "applied") == 1
    registry = service.metrics.registry
    assert registry.get_sample_value("creditgate_catalog_info", {"version": new}) == 1
    assert registry.get_sample_value("creditgate_catalog_info", {"version": old}) is None


async def test_an_invalid_file_is_rejected_once_and_the_old_catalog_stays(
    file: Path, watcher: CatalogWatcher, service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    old = service.catalog
    await watcher.check()
    file.write_text(_catalog(limit=-5))
    caplog.set_level(logging.INFO, logger="sidecar.reload")
    assert await watcher.check() == "rejected"
    assert await watcher.check() == "unchanged"  # logged once, not at every poll
    assert service.catalog is old
    (record,) = caplog.records
    assert record.levelno == logging.ERROR
    message = record.getMessage()
    assert str(file) in message
    assert "plans.pro.features.chat.limit" in message
    assert _reloads(service, "rejected") == 1
    answer = await service.reserve(
        ReserveRequest(customer="nobody", feature="chat", units={}, idempotency_key="k")
    )
    assert answer.catalog_version == old.version
    file.write_text(_catalog(limit=99))  # fixed: the next check applies it
    assert await watcher.check() == "applied"


async def test_a_control_character_is_rejected_like_any_invalid_file(
    file: Path, watcher: CatalogWatcher, service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    old = service.catalog
    await watcher.check()
    file.write_text(EXAMPLE.read_text() + "\x07\n")
    assert await watcher.check() == "rejected"
    assert service.catalog is old
    assert "unacceptable character" in caplog.records[-1].getMessage()


async def test_a_failed_adoption_is_logged_and_tried_again(
    file: Path, service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    """What adopting a catalog does may fail (the ledger records it in PostgreSQL): the watcher
    logs it, keeps running, and tries the same file again at its next check."""
    attempts = []

    async def adopt(catalog: Catalog) -> None:
        attempts.append(catalog.version)
        if len(attempts) == 1:
            raise ConnectionError("database away")
        service.swap_catalog(catalog)

    watcher = CatalogWatcher(
        file, current=lambda: service.catalog, adopt=adopt,
        reloads=service.metrics.catalog_reloads, interval_s=0.01,
    )  # fmt: skip
    file.write_text(_catalog(limit=55))
    task = asyncio.create_task(watcher.run())
    try:
        async with asyncio.timeout(5):
            while service.catalog.version != load_catalog(file).version:
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
    assert len(attempts) == 2
    assert any(r.getMessage().startswith("catalog check failed") for r in caplog.records)


async def test_a_missing_file_is_rejected_and_the_old_catalog_stays(
    file: Path, watcher: CatalogWatcher, service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    old = service.catalog
    await watcher.check()
    file.unlink()
    assert await watcher.check() == "rejected"
    assert await watcher.check() == "rejected"
    assert service.catalog is old
    assert len([r for r in caplog.records if "unreadable" in r.getMessage()]) == 1
    file.write_text(EXAMPLE.read_text())  # back as it was: nothing to apply
    assert await watcher.check() == "same_version"


async def test_a_configmap_symlink_swap_is_applied(tmp_path: Path, service: Service) -> None:
    """Kubernetes updates a ConfigMap volume by repointing ``..data`` at a new folder."""
    volume = tmp_path / "volume"
    first, second = volume / "..2026_11_24_a", volume / "..2026_11_24_b"
    first.mkdir(parents=True)
    second.mkdir()
    (first / "catalog.yaml").write_text(EXAMPLE.read_text())
    (second / "catalog.yaml").write_text(_catalog(limit=777))
    (volume / "..data").symlink_to(first.name)
    (volume / "catalog.yaml").symlink_to("..data/catalog.yaml")
    watcher = catalog_watcher(service, str(volume / "catalog.yaml"), interval_s=3600)
    assert await watcher.check() == "same_version"
    (volume / "..data_tmp").symlink_to(second.name)
    os.replace(volume / "..data_tmp", volume / "..data")  # atomic, as the kubelet does it
    assert await watcher.check() == "applied"
    assert service.catalog.version == load_catalog(second / "catalog.yaml").version


async def test_a_running_sidecar_picks_up_a_change_by_itself(
    tmp_path: Path, start_sidecar: StartSidecar, http: aiohttp.ClientSession
) -> None:
    file = tmp_path / "catalog.yaml"
    file.write_text(EXAMPLE.read_text())
    sidecar = await start_sidecar(catalog=str(file), catalog_reload_ms=20)
    own = Api(http, sidecar)
    before = (await own.ok("/readyz"))["catalog_version"]
    file.write_text(_catalog(limit=4321))
    async with asyncio.timeout(5):
        while (await own.ok("/readyz"))["catalog_version"] == before:
            await asyncio.sleep(0.02)
    assert sidecar.service.catalog.version == load_catalog(file).version
