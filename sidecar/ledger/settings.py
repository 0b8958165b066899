"""The ledger service's settings: one typed struct from flags or environment; fails fast.

Variables: ``CREDITGATE_CATALOG``, ``CREDITGATE_REDIS``, ``CREDITGATE_SHARDS`` and
``CREDITGATE_ENVIRONMENT`` (shared with the sidecar),
``DATABASE_URL`` (none: an embedded PostgreSQL in a temporary folder), and
``CREDITGATE_LEDGER_<SETTING>`` for the rest.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

import msgspec

from sidecar.environment import LIVE
from sidecar.settings import ENVIRONMENT_HELP, REDIS_HELP, SHARDS_HELP, Source

__all__ = ["LEDGER_MAX_BYTES", "LedgerSettings", "add_ledger_flags", "ledger_settings_from"]


LEDGER_MAX_BYTES = 256 * 1024
"""The largest request the ledger's APIs (HTTP and gRPC) take: a catalog proposal's file."""


class LedgerSettings(msgspec.Struct, frozen=True, kw_only=True):
    catalog: str
    """Catalog file (YAML): the one the sidecars use; recorded under its version."""
    redis: str
    environment: str = LIVE
    """The sidecars' environment: its Redis keys, and its own PostgreSQL schema (ledger/db.py)."""
    shards: int | None = None
    """As the sidecar's: chosen once, recorded in Redis."""
    database_url: str | None = None
    """postgresql://...; None runs an embedded PostgreSQL (data deleted on exit)."""
    host: str = "127.0.0.1"
    port: int = 7074
    token: str | None = None
    """Bearer token of the query API; it listens only when a token is set."""
    grpc_port: int | None = None
    """The gRPC corrections service (CreditgateLedgerService), with the same token; None: none."""
    group: str = "ledger"
    consumer: str | None = None
    """Consumer name in the group; None: <hostname>-<pid>-<worker>."""
    workers: int = 1
    batch_max: int = 5000
    poll_ms: int = 50
    claim_min_idle_ms: int = 30_000
    claim_every_ms: int = 5000
    trim_every_ms: int = 10_000
    worker_timeout_ms: int = 5000
    """A worker that has not heartbeat for this long leaves the split; the others take its
    shards."""
    trim: bool = True
    pool_max: int = 8
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = None
    """A listener for /metrics, /healthz and /readyz, open without a token; None: none."""
    catalog_reload_ms: int = 2000
    """How often the catalog file is checked; a new version is recorded (0: never)."""
    lag_refresh_ms: int = 10_000
    """How often stream length and lag are read from Redis for the metrics."""
    generation_check_ms: int = 1000
    """How often Redis's generation is compared with the ledger's (ledger/generation.py): a
    Redis that lost state is fenced within about this long."""
    webhook_backoff_ms: int = 1000
    """The wait after a webhook attempt failed; doubled after each further failure (to 1 h)."""


_HELP = {
    "catalog": "catalog file (YAML), the sidecars' own",
    "redis": REDIS_HELP,
    "environment": ENVIRONMENT_HELP,
    "shards": SHARDS_HELP,
    "database_url": "PostgreSQL URL; unset: an embedded PostgreSQL in a temporary folder",
    "host": "address to bind the query API (default 127.0.0.1)",
    "port": "query API port (default 7074; 0 picks a free one)",
    "token": "bearer token the query API requires (no token: no query API)",
    "grpc_port": "port of the gRPC corrections service, same token (default: none; 0: free)",
    "group": "Redis consumer group (default ledger)",
    "consumer": "consumer name in the group (default <hostname>-<pid>-<worker>)",
    "workers": "ingest workers in this process (default 1)",
    "batch_max": "stream entries per PostgreSQL transaction (default 5000)",
    "poll_ms": "wait when the streams are empty (default 50)",
    "claim_min_idle_ms": "claim entries a dead worker left pending this long (default 30000)",
    "claim_every_ms": "look for entries to claim this often (default 5000)",
    "trim_every_ms": "delete stored entries from the streams this often (default 10000)",
    "worker_timeout_ms": "take a silent worker's shards after this long (default 5000)",
    "trim": "delete stored entries from the streams: true or false (default true)",
    "pool_max": "PostgreSQL connections (default 8)",
    "metrics_host": "address of the metrics listener (default 127.0.0.1)",
    "metrics_port": "port of a listener serving only /metrics, /healthz, /readyz (default: none)",
    "catalog_reload_ms": "record a changed catalog file's version this often; 0: never (2000)",
    "lag_refresh_ms": "read stream length and lag from Redis this often (default 10000)",
    "generation_check_ms": "check that Redis still holds the ledger's state this often (1000)",
    "webhook_backoff_ms": "wait after a failed webhook attempt, doubled each time (1000)",
}
_SHARED = {
    "catalog": "CREDITGATE_CATALOG",
    "redis": "CREDITGATE_REDIS",
    "shards": "CREDITGATE_SHARDS",
    "environment": "CREDITGATE_ENVIRONMENT",
    "database_url": "DATABASE_URL",
}


SOURCE = Source(
    LedgerSettings,
    _HELP,
    lambda field: _SHARED.get(field, "CREDITGATE_LEDGER_" + field.upper()),
)


def add_ledger_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per setting; each defaults to its environment variable, then to the struct."""
    SOURCE.add_flags(parser)


def ledger_settings_from(
    flags: argparse.Namespace, environ: Mapping[str, str], **overrides: Any
) -> LedgerSettings:
    """Merge flags over environment over ``overrides`` over defaults; raise SettingsError."""
    settings = SOURCE.load(flags, environ, required=("catalog", "redis"), **overrides)
    SOURCE.check_port(settings, "port", "grpc_port", "metrics_port")
    if settings.catalog_reload_ms < 0:
        raise SOURCE.fail("catalog_reload_ms", "must be 0 (never) or above")
    SOURCE.check_positive(
        settings, "workers", "batch_max", "poll_ms", "claim_min_idle_ms", "claim_every_ms",
        "trim_every_ms", "worker_timeout_ms", "pool_max", "lag_refresh_ms", "generation_check_ms",
        "webhook_backoff_ms",
    )  # fmt: skip
    if settings.pool_max < settings.workers * 2 + 1:
        raise SOURCE.fail(
            "pool_max",
            f"must be at least 2 per worker plus 1 for queries, {settings.workers * 2 + 1} here",
        )
    SOURCE.check_redis(settings)
    if settings.database_url is not None and not settings.database_url.startswith(
        ("postgresql://", "postgres://")
    ):
        raise SOURCE.fail("database_url", "not a postgresql:// URL")
    SOURCE.check_token(settings, "token")
    if settings.grpc_port is not None and settings.token is None:
        raise SOURCE.fail("grpc_port", "needs a token: set --token (or CREDITGATE_LEDGER_TOKEN)")
    return settings
