"""A running ledger service: ingest workers and the query API on one event loop.

Start: PostgreSQL (``database_url``, or an embedded server), migrations, the catalog recorded
under its version, then ``workers`` ingest workers and, with a token, the query API. A worker
that fails (Redis or PostgreSQL away) is restarted after a bounded back-off; it first stores
what it had read and not acknowledged. Stop: workers finish their batch, then everything
closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from aiohttp import web

from sidecar.catalog import load_catalog
from sidecar.ledger.db import Pool, open_pool, record_catalog
from sidecar.ledger.embedded_pg import EmbeddedPostgres
from sidecar.ledger.http import ledger_app
from sidecar.ledger.ingest import Ingestor
from sidecar.ledger.settings import LedgerSettings
from sidecar.ledger.streams import StreamReader
from sidecar.lifecycle import stop_on_signals
from sidecar.settings import SettingsError

__all__ = ["RESTART_DELAY_MAX_S", "Ledger", "serve_ledger"]

log = logging.getLogger(__name__)
RESTART_DELAY_MAX_S = 10.0
SHUTDOWN_TIMEOUT_S = 10.0


class Ledger:
    """``start()``, then ``port`` and ``database_url`` are known; ``stop()`` ends everything."""

    def __init__(self, settings: LedgerSettings) -> None:
        self.settings = settings
        self.catalog = load_catalog(settings.catalog)
        self.postgres: EmbeddedPostgres | None = None
        self.database_url = settings.database_url
        self.pool: Pool | None = None
        self.redis = aioredis.Redis.from_url(settings.redis, socket_timeout=10)
        self.ingestors: list[Ingestor] = []
        self.port: int | None = None
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        if self.database_url is None:
            self.postgres = await asyncio.to_thread(EmbeddedPostgres)
            self.database_url = self.postgres.url
        try:
            self.pool = await open_pool(self.database_url, max_size=self.settings.pool_max)
        except (OSError, asyncpg.PostgresError) as error:
            raise SettingsError(
                f"--database-url (or DATABASE_URL): cannot connect: {error}"
            ) from error
        async with self.pool.acquire() as connection:
            await record_catalog(connection, self.catalog)
        base = self.settings.consumer or f"{socket.gethostname()}-{os.getpid()}"
        for index in range(self.settings.workers):
            name = base if self.settings.workers == 1 else f"{base}-{index}"
            reader = StreamReader(self.redis, group=self.settings.group, consumer=name)
            ingestor = Ingestor(
                reader,
                self.pool,
                batch_max=self.settings.batch_max,
                poll_ms=self.settings.poll_ms,
                claim_min_idle_ms=self.settings.claim_min_idle_ms,
                trim=self.settings.trim,
            )
            self.ingestors.append(ingestor)
            self._tasks.append(asyncio.create_task(self._supervise(ingestor)))
        if self.settings.token is not None:
            app = ledger_app(self.pool, self.settings.token, self.status)
            self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
            await self._runner.setup()
            await web.TCPSite(self._runner, self.settings.host, self.settings.port).start()
            self.port = int(self._runner.addresses[0][1])

    async def _supervise(self, ingestor: Ingestor) -> None:
        delay = 0.5
        while not self._stop.is_set():
            try:
                await ingestor.run(self._stop)
            except Exception as error:  # every failure: log, back off, read again
                log.warning(
                    "ledger worker %s failed (%s: %s); restarting in %.1f s",
                    ingestor.reader.consumer, type(error).__name__, error, delay,
                )  # fmt: skip
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)
                delay = min(delay * 2, RESTART_DELAY_MAX_S)
            else:
                return

    async def status(self) -> dict[str, Any]:
        """Ingest counters per worker and the lag of the streams."""
        lag = await self.ingestors[0].reader.lag() if self.ingestors else None
        return {
            "workers": [
                {"consumer": i.reader.consumer, "stored": i.stored, "unparsed": i.unparsed}
                for i in self.ingestors
            ],
            "lag": lag,
        }

    async def stop(self) -> None:
        self._stop.set()
        if self._runner is not None:
            await self._runner.cleanup()
        for task in self._tasks:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, SHUTDOWN_TIMEOUT_S)
        if self.pool is not None:
            await self.pool.close()
        await self.redis.aclose()
        if self.postgres is not None:
            await asyncio.to_thread(self.postgres.stop)


async def serve_ledger(
    settings: LedgerSettings, on_ready: Callable[[Ledger], Awaitable[None]] | None = None
) -> None:
    """Run until SIGTERM or SIGINT, then stop gracefully."""
    ledger = Ledger(settings)
    stop = stop_on_signals()
    try:
        await ledger.start()
        log.info(
            "ledger: database %s, query API %s, %d worker(s) in group %s",
            "embedded" if ledger.postgres else "DATABASE_URL",
            f"{settings.host}:{ledger.port}" if ledger.port else "off (no token)",
            settings.workers,
            settings.group,
        )
        if on_ready is not None:
            await on_ready(ledger)
        await stop.wait()
    finally:
        await ledger.stop()
