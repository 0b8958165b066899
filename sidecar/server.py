"""A running sidecar: HTTP and gRPC listeners on one event loop, the customer change feed, the
catalog watcher, and (when configured) a listener for metrics and probes.

Shutdown is graceful: stop accepting, let requests in flight finish (up to
``SHUTDOWN_TIMEOUT_S``), then close Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import grpc
import msgspec
from aiohttp import web

from sidecar.catalog import Catalog, load_catalog
from sidecar.customers import CustomerDirectory
from sidecar.errors import StoreError
from sidecar.http import admin_app, api_app
from sidecar.http.api import readiness
from sidecar.http.environment import name_environment
from sidecar.http.probes import probes_app
from sidecar.lifecycle import stop_on_signals
from sidecar.logs import redacted, safe_url
from sidecar.proxy.app import proxy_app
from sidecar.proxy.upstreams import Upstream, load_upstreams
from sidecar.reload import CatalogWatcher
from sidecar.rpc.server import start_admin, start_public
from sidecar.service import Service
from sidecar.service.spool import Spool
from sidecar.settings import Settings
from sidecar.store.memory import watch_memory
from sidecar.store.redis_store import RedisStore

__all__ = ["SHUTDOWN_TIMEOUT_S", "Sidecar", "StoppedWaiting", "catalog_watcher", "serve"]

log = logging.getLogger(__name__)
SHUTDOWN_TIMEOUT_S = 10.0
FEED_TIMEOUT_S = 5.0
CONNECT_RETRY_S = 0.2
CONNECT_RETRY_MAX_S = 5.0
"""While Redis does not answer at start, the wait between tries grows to this."""


class StoppedWaiting(Exception):
    """SIGTERM or SIGINT came while the sidecar waited for Redis to start."""


def catalog_watcher(service: Service, path: str, *, interval_s: float) -> CatalogWatcher:
    """Reloads ``service``'s catalog from ``path``."""

    async def adopt(catalog: Catalog) -> None:
        service.swap_catalog(catalog)

    return CatalogWatcher(
        path,
        current=lambda: service.catalog,
        adopt=adopt,
        reloads=service.metrics.catalog_reloads,
        interval_s=interval_s,
    )


class Sidecar:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = RedisStore(
            settings.redis,
            timeout_s=settings.redis_timeout_ms / 1000,
            deadline_s=settings.redis_deadline_ms / 1000,
            wait_replicas=settings.redis_wait_replicas,
            wait_timeout_ms=settings.redis_wait_timeout_ms,
            idempotency_window_ms=settings.idempotency_window_ms,
            environment=settings.environment,
        )
        self.customers = CustomerDirectory(
            self.store,
            max_entries=settings.cache_max_entries,
            ttl_s=settings.cache_ttl_s,
            known_ttl_s=settings.fallback_customer_ttl_s,
        )
        spool = Spool(
            settings.spool_dir,
            max_entries=settings.spool_max_entries,
            max_bytes=settings.spool_max_bytes,
            environment=settings.environment,
        )
        self.service = Service(
            self.store, load_catalog(settings.catalog), customers=self.customers, spool=spool
        )
        self.upstreams: dict[str, Upstream] = (
            {} if settings.proxy_upstreams is None else load_upstreams(settings.proxy_upstreams)
        )
        self._runners: list[web.AppRunner] = []
        self._grpc_servers: list[grpc.aio.Server] = []
        self.watcher = catalog_watcher(
            self.service, settings.catalog, interval_s=settings.catalog_reload_ms / 1000
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._feed: asyncio.Task[None] | None = None
        self.port: int | None = None
        self.metrics_port: int | None = None
        self.proxy_port: int | None = None
        self.admin_port: int | None = None
        self.grpc_port: int | None = None
        self.grpc_admin_port: int | None = None

    async def _listen(self, app: web.Application, port: int, host: str | None = None) -> int:
        name_environment(app, self.settings.environment)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
        await runner.setup()
        self._runners.append(runner)
        await web.TCPSite(runner, host or self.settings.host, port).start()
        return int(runner.addresses[0][1])

    async def _connect(self) -> None:
        """Adopt the layout, open the connections and follow the change feed; StoreError
        when Redis does not answer (nothing is left running then)."""
        await self.store.agree_layout(self.settings.shards)
        await self.store.warm()
        subscribed = asyncio.Event()
        feed = asyncio.create_task(self.customers.follow_changes(subscribed))
        waiter = asyncio.create_task(subscribed.wait())
        await asyncio.wait(
            {waiter, feed}, timeout=FEED_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
        )
        waiter.cancel()
        if not subscribed.is_set():
            feed.cancel()
            with contextlib.suppress(asyncio.CancelledError, StoreError):
                await feed  # what stopped it, if it stopped
            raise StoreError(f"no change feed from Redis in {FEED_TIMEOUT_S:.0f} s")
        self._feed = feed

    async def start(self, stop: asyncio.Event | None = None) -> None:
        """Start every listener. While Redis does not answer, wait for it (logged, backing off
        to CONNECT_RETRY_MAX_S) rather than fail: a sidecar restarted during an outage serves
        as soon as Redis does. ``stop`` set meanwhile: StoppedWaiting."""
        if self.settings.spool_dir is None:
            log.warning(
                "no --spool-dir: calls answered in fallback and commits Redis never answered "
                "are kept in memory only, and lost if this process dies"
            )
        await self.service.fallback.load()  # what a killed predecessor left is replayed
        delay = CONNECT_RETRY_S
        while True:
            try:
                await self._connect()
                break
            except StoreError as error:
                log.warning(
                    "waiting for Redis at %s (%s); trying again in %.1f s",
                    safe_url(self.settings.redis), error, delay,
                )  # fmt: skip
            with contextlib.suppress(TimeoutError):
                if stop is not None:
                    await asyncio.wait_for(stop.wait(), delay)
                    raise StoppedWaiting
                await asyncio.sleep(delay)
            delay = min(2 * delay, CONNECT_RETRY_MAX_S)
        settings = self.settings
        if settings.catalog_reload_ms:
            self._tasks.append(asyncio.create_task(self.watcher.run()))
        if settings.redis_max_memory_bytes is not None:
            watch = watch_memory(self.store, settings.redis_max_memory_bytes)
            self._tasks.append(asyncio.create_task(watch))
        body, host, token = settings.max_body_bytes, settings.host, settings.admin_token
        if settings.http:
            self.port = await self._listen(
                api_app(self.service, max_body_bytes=body), settings.port
            )
            if token is not None:
                app = admin_app(self.service, token, max_body_bytes=body)
                self.admin_port = await self._listen(app, settings.admin_port)
        if settings.proxy_upstreams is not None:
            app = proxy_app(
                self.service, self.upstreams, feature=settings.proxy_feature,
                max_body_bytes=settings.proxy_max_body_bytes,
            )  # fmt: skip
            self.proxy_port = await self._listen(app, settings.proxy_port)
        if settings.grpc:
            server, self.grpc_port = await start_public(
                self.service, host, settings.grpc_port, max_message_bytes=body
            )
            self._grpc_servers.append(server)
            if token is not None:
                server, self.grpc_admin_port = await start_admin(
                    self.service,
                    host,
                    settings.grpc_admin_port,
                    token=token,
                    max_message_bytes=body,
                )
                self._grpc_servers.append(server)
        # Last: a probe that passes means every listener is up (a native sidecar's startup
        # probe lets the gateway start).
        if settings.metrics_port is not None:
            app = probes_app(self.service.metrics.registry, readiness(self.service))
            self.metrics_port = await self._listen(
                app, settings.metrics_port, settings.metrics_host
            )

    async def stop(self) -> None:
        for server in self._grpc_servers:
            await server.stop(SHUTDOWN_TIMEOUT_S)
        for runner in self._runners:
            await runner.cleanup()
        tasks = [*self._tasks, *([self._feed] if self._feed else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.service.close()
        await self.store.close()


async def serve(
    settings: Settings, on_ready: Callable[[Sidecar], Awaitable[None]] | None = None
) -> None:
    """Run until SIGTERM or SIGINT, then shut down gracefully."""
    sidecar = Sidecar(settings)
    stop = stop_on_signals()
    try:
        try:
            await sidecar.start(stop)
        except StoppedWaiting:
            return
        log.info(
            "sidecar started",
            extra={
                "catalog_version": sidecar.service.catalog.version,
                "config": redacted(msgspec.structs.asdict(settings)),
                "listening": {
                    "http": sidecar.port,
                    "admin": sidecar.admin_port,
                    "grpc": sidecar.grpc_port,
                    "grpc_admin": sidecar.grpc_admin_port,
                    "metrics": sidecar.metrics_port,
                    "proxy": sidecar.proxy_port,
                },
            },
        )
        if on_ready is not None:
            await on_ready(sidecar)
        await stop.wait()
    finally:
        await sidecar.stop()
