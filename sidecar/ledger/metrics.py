"""Prometheus metrics of the ledger service: ingest counters and batch latency as they happen,
stream length and lag read from Redis on a timer (``lag_refresh_ms``). No customer id is ever a
label."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from sidecar.ledger.streams import Lag
from sidecar.metrics import seconds_since

__all__ = ["LedgerMetrics"]

BATCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class LedgerMetrics:
    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)
        self.ingested = Counter(
            "creditgate_ledger_events_ingested",
            "Stream entries stored in PostgreSQL and acknowledged (re-deliveries included).",
            registry=registry,
        )
        self.unparsed = Counter(
            "creditgate_ledger_events_unparsed",
            "Entries that did not decode as events; stored raw for a human to look at.",
            registry=registry,
        )
        self.batch_seconds = Histogram(
            "creditgate_ledger_batch_seconds",
            "One batch: the PostgreSQL transaction and the XACK after it.",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.batch_size = Histogram(
            "creditgate_ledger_batch_entries",
            "Entries per batch.",
            buckets=(1, 10, 100, 500, 1000, 2500, 5000, 10_000),
            registry=registry,
        )
        self.streams = Gauge(
            "creditgate_ledger_streams", "Customer event streams holding entries.",
            registry=registry,
        )  # fmt: skip
        self.stream_entries = Gauge(
            "creditgate_ledger_stream_entries",
            "Entries in the event streams (XLEN), stored or not; trimming removes stored ones.",
            registry=registry,
        )
        self.undelivered = Gauge(
            "creditgate_ledger_undelivered_entries",
            "Entries appended and not yet read by any ledger worker.",
            registry=registry,
        )
        self.pending = Gauge(
            "creditgate_ledger_pending_entries",
            "Entries read by a worker and not yet acknowledged.",
            registry=registry,
        )
        self.redis_state_lost = Gauge(
            "creditgate_ledger_redis_state_lost",
            "1 while Redis does not hold the state the ledger knows of (fenced until "
            "`creditgate ledger rebuild --all`), else 0.",
            registry=registry,
        )
        self.margin_alerts = Counter(
            "creditgate_ledger_margin_alerts",
            "Customers and plans found below their plan's margin floor in a month "
            "(ledger/margins.py); each once per month.",
            registry=registry,
        )
        self.lag_refresh_errors = Counter(
            "creditgate_ledger_lag_refresh_errors",
            "Scrapes whose stream and lag figures could not be read from Redis (last kept).",
            registry=registry,
        )
        self.catalog_reloads = Counter(
            "creditgate_ledger_catalog_reloads",
            "Catalog file changes seen: applied (recorded), or rejected as invalid.",
            ["result"],
            registry=registry,
        )
        self.webhook_attempts = Counter(
            "creditgate_ledger_webhook_attempts",
            "Alert webhook attempts by result: delivered (2xx) or failed.",
            ["result"],
            registry=registry,
        )
        self.webhook_endpoints_disabled = Counter(
            "creditgate_ledger_webhook_endpoints_disabled",
            "Webhook endpoints disabled after failing attempt after attempt.",
            registry=registry,
        )
        self.lag_seconds = Gauge(
            "creditgate_ledger_lag_seconds",
            "Age of the oldest entry not yet stored; 0 when the ledger has caught up.",
            registry=registry,
        )

    def batch(self, entries: int, started_ns: int) -> None:
        self.ingested.inc(entries)
        self.batch_size.observe(entries)
        self.batch_seconds.observe(seconds_since(started_ns))

    def lag(self, lag: Lag, now_ms: int) -> None:
        self.streams.set(lag.streams)
        self.stream_entries.set(lag.length)
        self.undelivered.set(lag.undelivered)
        self.pending.set(lag.pending)
        oldest = lag.oldest_ms
        self.lag_seconds.set(0 if oldest is None else max(0, now_ms - oldest) / 1000)
