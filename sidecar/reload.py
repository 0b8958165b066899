"""Catalog hot reload: a process re-reads its catalog file and switches when it changes.

A Kubernetes ConfigMap update replaces the mounted file (through a symlink swap) within about
a minute; polling its bytes every ``interval`` finds that without inotify. A changed file is
validated in full before it is used: a valid one is adopted whole (the sidecar's requests in
flight keep the catalog they started with; the ledger records the new version), an invalid or
unreadable one is logged once and the catalog in force stays.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from prometheus_client import Counter

from sidecar.catalog import Catalog, parse_catalog
from sidecar.errors import CatalogError

__all__ = ["CatalogWatcher"]

log = logging.getLogger(__name__)


def _read(path: Path, seen: bytes | None) -> tuple[bytes, Catalog | CatalogError | None]:
    """The file's bytes and what they parse to (off the event loop: both can take a while);
    None when they are the bytes ``seen`` last time (nothing to parse)."""
    data = path.read_bytes()
    if data == seen:
        return data, None
    try:
        return data, parse_catalog(data.decode("utf-8"), file=str(path))
    except UnicodeDecodeError as error:
        return data, CatalogError(str(path), "(file)", str(error), "save it as UTF-8")
    except CatalogError as error:
        return data, error


class CatalogWatcher:
    """Checks ``path`` every ``interval_s``; ``adopt`` is called with each valid new catalog,
    ``reloads`` counts the outcomes by ``result`` (applied, rejected)."""

    def __init__(
        self,
        path: str | Path,
        *,
        current: Callable[[], Catalog],
        adopt: Callable[[Catalog], Awaitable[None]],
        reloads: Counter,
        interval_s: float,
    ) -> None:
        self.path = Path(path)
        self.current = current
        self.adopt = adopt
        self.reloads = reloads
        self.interval_s = interval_s
        self._seen: bytes | None = None
        self._unreadable = False

    async def check(self) -> str:
        """Look at the file once: "unchanged", "applied", "same_version" or "rejected"."""
        try:
            data, parsed = await asyncio.to_thread(_read, self.path, self._seen)
        except OSError as error:
            if not self._unreadable:
                self._unreadable = True
                self.reloads.labels("rejected").inc()
                log.error(
                    "catalog file unreadable (%s); keeping the catalog in force",
                    error.strerror,
                    extra=self._context(),
                )
            return "rejected"
        unchanged = parsed is None and not self._unreadable
        self._seen, self._unreadable = data, False
        if unchanged:
            return "unchanged"
        if parsed is None:  # readable again, and as it was: check it as a change
            parsed = (await asyncio.to_thread(_read, self.path, None))[1]
            assert parsed is not None
        if isinstance(parsed, CatalogError):
            self.reloads.labels("rejected").inc()
            log.error(
                "catalog change rejected, keeping the catalog in force: %s",
                parsed,
                extra=self._context(),
            )
            return "rejected"
        previous = self.current().version
        if parsed.version == previous:
            return "same_version"
        try:
            await self.adopt(parsed)
        except Exception:
            self._seen = None  # not adopted: the next check tries again
            raise
        self.reloads.labels("applied").inc()
        log.info("catalog reloaded", extra={**self._context(), "previous_version": previous})
        return "applied"

    def _context(self) -> dict[str, str]:
        return {"file": str(self.path), "catalog_version": self.current().version}

    async def run(self) -> None:
        """Check every ``interval_s`` until cancelled; a failure is logged and checked again."""
        while True:
            try:
                await self.check()
            except Exception:
                log.exception("catalog check failed; trying again", extra=self._context())
            await asyncio.sleep(self.interval_s)
