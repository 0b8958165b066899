"""Catalog hot reload: the sidecar re-reads its catalog file and switches when it changes.

A Kubernetes ConfigMap update replaces the mounted file (through a symlink swap) within about
a minute; polling its bytes every ``interval`` finds that without inotify. A changed file is
validated in full before it is used: a valid one replaces the catalog whole (requests in
flight keep the one they started with), an invalid or unreadable one is logged once and the
catalog in force stays.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from sidecar.catalog import parse_catalog
from sidecar.errors import CatalogError
from sidecar.service import Service

__all__ = ["CatalogWatcher"]

log = logging.getLogger(__name__)


class CatalogWatcher:
    def __init__(self, path: str | Path, service: Service, *, interval_s: float) -> None:
        self.path = Path(path)
        self.service = service
        self.interval_s = interval_s
        self._seen: bytes | None = None

    async def check(self) -> str:
        """Look at the file once: "unchanged", "applied", "same_version" or "rejected"."""
        try:
            data = self.path.read_bytes()
        except OSError as error:
            if self._seen != b"":
                self.service.metrics.catalog_reloads.labels("rejected").inc()
                log.error(
                    "catalog file unreadable (%s); keeping the catalog in force",
                    error.strerror,
                    extra=self._context(),
                )
            self._seen = b""
            return "rejected"
        if data == self._seen:
            return "unchanged"
        self._seen = data
        try:
            text = data.decode("utf-8")
            catalog = await asyncio.to_thread(parse_catalog, text, file=str(self.path))
        except (CatalogError, UnicodeDecodeError) as error:
            self.service.metrics.catalog_reloads.labels("rejected").inc()
            log.error(
                "catalog change rejected, keeping the catalog in force: %s",
                error,
                extra=self._context(),
            )
            return "rejected"
        previous = self.service.catalog.version
        if catalog.version == previous:
            return "same_version"
        self.service.swap_catalog(catalog)
        self.service.metrics.catalog_reloads.labels("applied").inc()
        log.info(
            "catalog reloaded",
            extra={**self._context(), "previous_version": previous},
        )
        return "applied"

    def _context(self) -> dict[str, str]:
        return {"file": str(self.path), "catalog_version": self.service.catalog.version}

    async def run(self) -> None:
        """Check every ``interval_s`` until cancelled."""
        while True:
            await self.check()
            await asyncio.sleep(self.interval_s)
