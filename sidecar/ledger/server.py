"""A running ledger service: ingest workers and the query API on one event loop.

Start: PostgreSQL (``database_url``, or an embedded server), migrations, the catalog recorded
under its version, then ``workers`` ingest workers, with a token the query API, and with a
``metrics_port`` the listener for Prometheus and probes. A worker
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
import grpc
import msgspec
from aiohttp import web
from redis.exceptions import RedisClusterException, RedisError

from sidecar.catalog import Catalog, load_catalog
from sidecar.engine.periods import period_start_ms
from sidecar.http.environment import name_environment
from sidecar.http.probes import probes_app
from sidecar.ledger.close import grant_rebates, roll_over
from sidecar.ledger.corrections import Corrections
from sidecar.ledger.db import Pool, open_pool, record_catalog
from sidecar.ledger.embedded_pg import EmbeddedPostgres
from sidecar.ledger.generation import Epochs, watch_once
from sidecar.ledger.http import ledger_app
from sidecar.ledger.ingest import Ingestor
from sidecar.ledger.margins import check_margins
from sidecar.ledger.metrics import LedgerMetrics
from sidecar.ledger.proposals import PricingDesk
from sidecar.ledger.settings import LedgerSettings
from sidecar.ledger.streams import StreamReader
from sidecar.ledger.webhooks import Dispatcher
from sidecar.ledger.workers import Membership
from sidecar.lifecycle import stop_on_signals
from sidecar.logs import redacted
from sidecar.reload import CatalogWatcher
from sidecar.rpc.server import start_ledger
from sidecar.service.keys import ADMIN_TOKENS, KeyRecord, check_uncached
from sidecar.settings import SettingsError
from sidecar.store.layout import Layout
from sidecar.store.redis_store import RedisStore
from sidecar.store.topology import agree_layout, check_health, make_client
from sidecar.times import format_time, wall_clock_ms

__all__ = ["RESTART_DELAY_MAX_S", "Ledger", "serve_ledger"]

log = logging.getLogger(__name__)
RESTART_DELAY_MAX_S = 10.0
SHUTDOWN_TIMEOUT_S = 10.0
CLOSE_EVERY_S = 60.0
"""How often the service checks whether a month has ended to close (ledger/close.py), and
margins (ledger/margins.py)."""
PROBE_TIMEOUT_S = 2.0
LAG_TIMEOUT_S = 30.0


class Ledger:
    """``start()``, then ``port`` and ``database_url`` are known; ``stop()`` ends everything."""

    def __init__(self, settings: LedgerSettings) -> None:
        self.settings = settings
        self.catalog = load_catalog(settings.catalog)
        self.postgres: EmbeddedPostgres | None = None
        self.database_url = settings.database_url
        self.pool: Pool | None = None
        self.redis = make_client(settings.redis, socket_timeout=10)
        self.ingestors: list[Ingestor] = []
        self.store: RedisStore | None = None
        self._closed: int | None = None
        """The end of the last month this service closed (ledger/close.py)."""
        """For corrections (ledger/corrections.py): the store the sidecars use, its scripts."""
        self.metrics = LedgerMetrics()
        self.watcher = CatalogWatcher(
            settings.catalog,
            current=lambda: self.catalog,
            adopt=self._adopt,
            reloads=self.metrics.catalog_reloads,
            interval_s=settings.catalog_reload_ms / 1000,
        )
        self.port: int | None = None
        self.grpc_port: int | None = None
        self._grpc: grpc.aio.Server | None = None
        self.metrics_port: int | None = None
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._watch: asyncio.Task[None] | None = None
        self._lag: asyncio.Task[None] | None = None
        self._generation: asyncio.Task[None] | None = None
        self._epochs = Epochs()
        self.layout: Layout | None = None
        self._runners: list[web.AppRunner] = []

    async def start(self) -> None:
        try:
            layout = await agree_layout(self.redis, self.settings.shards, self.settings.environment)
        except (RedisError, RedisClusterException, OSError) as error:
            raise SettingsError(f"--redis (or CREDITGATE_REDIS): cannot use it: {error}") from error
        if self.database_url is None:
            try:
                self.postgres = await asyncio.to_thread(EmbeddedPostgres)
            except RuntimeError as error:
                message = f"--database-url (or DATABASE_URL) is unset, and {error}"
                raise SettingsError(message) from error
            self.database_url = self.postgres.url
        try:
            self.pool = await open_pool(
                self.database_url,
                max_size=self.settings.pool_max,
                environment=self.settings.environment,
            )
        except (OSError, asyncpg.PostgresError) as error:
            raise SettingsError(
                f"--database-url (or DATABASE_URL): cannot connect: {error}"
            ) from error
        async with self.pool.acquire() as connection:
            await record_catalog(connection, self.catalog)
        self.layout = layout
        await self.check_generation()  # before any worker reads a Redis that lost state
        base = self.settings.consumer or f"{socket.gethostname()}-{os.getpid()}"
        for index in range(self.settings.workers):
            name = base if self.settings.workers == 1 else f"{base}-{index}"
            reader = StreamReader(self.redis, layout, group=self.settings.group, consumer=name)
            timeout_ms = self.settings.worker_timeout_ms
            ingestor = Ingestor(
                reader,
                self.pool,
                batch_max=self.settings.batch_max,
                poll_ms=self.settings.poll_ms,
                membership=Membership(
                    self.redis, layout, reader.group, name, timeout_ms=timeout_ms
                ),
                heartbeat_every_ms=max(100, timeout_ms // 5),
                claim_every_ms=self.settings.claim_every_ms,
                claim_min_idle_ms=self.settings.claim_min_idle_ms,
                trim_every_ms=self.settings.trim_every_ms,
                trim=self.settings.trim,
                metrics=self.metrics,
            )
            self.ingestors.append(ingestor)
            self._tasks.append(asyncio.create_task(self._supervise(ingestor)))
        if self.settings.catalog_reload_ms:
            self._watch = asyncio.create_task(self.watcher.run())
        self._lag = asyncio.create_task(self._refresh_lag_until_stopped())
        self._generation = asyncio.create_task(self._check_generation_until_stopped())
        # The sidecars' store, for corrections and rollovers (its scripts); the layout is the one
        # agreed above: its own agreement would mark a generation the ledger may have fenced.
        self.store = RedisStore(self.settings.redis)
        self.store.layout = layout
        self.corrections = Corrections(self.pool, self.store, self._catalog, wall_clock_ms)
        self._tasks.append(asyncio.create_task(self._close_months_until_stopped()))
        self.webhooks = Dispatcher(
            self.pool, self.metrics, backoff_base_s=self.settings.webhook_backoff_ms / 1000,
            environment=self.settings.environment,
        )  # fmt: skip
        self._tasks.append(asyncio.create_task(self.webhooks.run(self._stop)))
        if self.settings.token is not None:
            app = ledger_app(
                self.pool, self.settings.token, self.status, self._scoped_token, self._catalog,
                self.corrections, self.settings.catalog, self.settings.environment,
            )  # fmt: skip
            self.port = await self._listen(app, self.settings.host, self.settings.port)
        if self.settings.grpc_port is not None:
            assert self.settings.token is not None  # settings refuse a gRPC port without one
            desk = PricingDesk(self.pool, self.settings.catalog, wall_clock_ms)
            self._grpc, self.grpc_port = await start_ledger(
                self.corrections, desk, self.settings.host, self.settings.grpc_port,
                token=self.settings.token, check=self._scoped_token, clock=wall_clock_ms,
                environment=self.settings.environment,
            )  # fmt: skip
        if self.settings.metrics_port is not None:
            app = probes_app(self.metrics.registry, self.readiness)
            self.metrics_port = await self._listen(
                app, self.settings.metrics_host, self.settings.metrics_port
            )

    async def _listen(self, app: web.Application, host: str, port: int) -> int:
        name_environment(app, self.settings.environment)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
        await runner.setup()
        self._runners.append(runner)
        await web.TCPSite(runner, host, port).start()
        return int(runner.addresses[0][1])

    async def close_month(self, now_ms: int) -> None:
        """Roll over the month that ended last (ledger/close.py) once every entry appended
        before its end is stored; a month closed already is not closed again here (and would
        roll nothing twice)."""
        assert self.pool is not None
        assert self.store is not None
        end = period_start_ms("month", now_ms)
        if end == self._closed or not self.ingestors:
            return
        lag = await self.ingestors[0].reader.lag()
        if lag.oldest_ms is not None and lag.oldest_ms < end:
            return  # not all of the month is stored yet
        start = period_start_ms("month", end - 1)
        async with self.pool.acquire() as connection:
            rolled = await roll_over(connection, self.store, self.catalog, end, now_ms)
            rebates = await grant_rebates(connection, self.store, self.catalog, start, end, now_ms)
        if rolled or rebates:
            log.info(
                "month ending %s closed: %d rollover buckets, %d volume rebates",
                format_time(end), rolled, rebates,
            )  # fmt: skip
        self._closed = end

    async def check_margins(self, now_ms: int) -> int:
        """Margin alerts of the month of ``now_ms`` (ledger/margins.py); how many are new."""
        assert self.pool is not None
        async with self.pool.acquire() as connection:
            alerted = await check_margins(connection, self.catalog, now_ms)
        self.metrics.margin_alerts.inc(alerted)
        return alerted

    async def _close_months_until_stopped(self) -> None:
        while not self._stop.is_set():
            try:
                await self.check_margins(wall_clock_ms())
                await self.close_month(wall_clock_ms())
            except (RedisError, RedisClusterException, OSError, asyncpg.PostgresError) as error:
                log.warning("closing the month failed (%s); trying again soon", error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), CLOSE_EVERY_S)

    def _catalog(self) -> Catalog:
        return self.catalog

    async def _scoped_token(self, header: str, now_ms: int) -> KeyRecord:
        assert self.layout is not None
        return await check_uncached(self.redis, self.layout, ADMIN_TOKENS, header, now_ms)

    async def _adopt(self, catalog: Catalog) -> None:
        """Record a new catalog version, so the events the sidecars price with it resolve."""
        assert self.pool is not None
        async with self.pool.acquire() as connection:
            await record_catalog(connection, catalog)
        self.catalog = catalog

    async def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Ready when PostgreSQL and Redis both answer within PROBE_TIMEOUT_S and no worker
        is failing (ingest stopped: what the ledger answers is out of date)."""
        assert self.pool is not None
        failing = [i.error for i in self.ingestors if i.error is not None]
        if failing:
            return False, {"status": "not_ready", "reason": f"ingest failing: {failing[0]}"}
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_S):
                async with self.pool.acquire() as connection:
                    await connection.fetchval("SELECT 1")
                await check_health(self.redis)
        except Exception as error:  # whatever stops an answer: not ready, and why
            return False, {"status": "not_ready", "reason": type(error).__name__}
        return True, {"status": "ready", "catalog_version": self.catalog.version}

    async def refresh_lag(self, timeout_s: float = LAG_TIMEOUT_S) -> None:
        """Stream length, pending entries and lag, read from Redis for the metrics (one
        pipelined round over the shards, on a timer). When Redis does not answer in time the
        last figures stay and the error is counted."""
        if not self.ingestors:
            return
        try:
            async with asyncio.timeout(timeout_s):
                lag = await self.ingestors[0].reader.lag()
        except (RedisError, RedisClusterException, OSError, TimeoutError):
            self.metrics.lag_refresh_errors.inc()
            return
        self.metrics.lag(lag, wall_clock_ms())

    async def check_generation(self) -> None:
        """Fence a Redis that lost the state the ledger knows of (ledger/generation.py)."""
        assert self.pool is not None
        assert self.layout is not None
        try:
            async with self.pool.acquire() as connection:
                verdict = await watch_once(self.redis, self.layout, connection, self._epochs)
        except (RedisError, RedisClusterException, OSError, asyncpg.PostgresError) as error:
            log.debug("generation check failed: %s", error)  # the next one runs soon
            return
        self.metrics.redis_state_lost.set(verdict.action in ("lose", "fenced"))

    async def _check_generation_until_stopped(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.settings.generation_check_ms / 1000)
            await self.check_generation()

    async def _refresh_lag_until_stopped(self) -> None:
        while not self._stop.is_set():
            await self.refresh_lag()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.settings.lag_refresh_ms / 1000)

    async def _supervise(self, ingestor: Ingestor) -> None:
        delay = 0.5
        while not self._stop.is_set():
            try:
                await ingestor.run(self._stop)
            except Exception as error:  # every failure: log, back off, read again
                ingestor.error = f"{type(error).__name__}: {error}"
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
                {
                    "consumer": i.reader.consumer,
                    "stored": i.stored,
                    "unparsed": i.unparsed,
                    "shards": len(i.reader.keys),
                    "error": i.error,
                }
                for i in self.ingestors
            ],
            "lag": lag,
        }

    async def stop(self) -> None:
        self._stop.set()
        timers = [t for t in (self._watch, self._lag, self._generation) if t is not None]
        for task in timers:
            task.cancel()
        await asyncio.gather(*timers, return_exceptions=True)
        if self._grpc is not None:
            await self._grpc.stop(SHUTDOWN_TIMEOUT_S)
        for runner in self._runners:
            await runner.cleanup()
        for task in self._tasks:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, SHUTDOWN_TIMEOUT_S)
        if self.pool is not None:
            await self.pool.close()
        await self.redis.aclose()
        if self.store is not None:
            await self.store.close()
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
            "ledger started",
            extra={
                "catalog_version": ledger.catalog.version,
                "database": "embedded" if ledger.postgres else "DATABASE_URL",
                "config": redacted(msgspec.structs.asdict(settings)),
                "listening": {
                    "query_api": ledger.port,
                    "grpc": ledger.grpc_port,
                    "metrics": ledger.metrics_port,
                },
            },
        )
        if on_ready is not None:
            await on_ready(ledger)
        await stop.wait()
    finally:
        await ledger.stop()
