"""Prometheus metrics of a sidecar, on a registry of its own (one per Sidecar, so that several
can share a process in tests without mixing counts).

Labels are closed sets: operations, outcomes, reason and result codes, script and command
names. Never a customer, user, team, agent or session id: that is what the ledger is for.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["LATENCY_BUCKETS", "Metrics", "counter", "gauge", "seconds_since"]

LATENCY_BUCKETS = (
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5,
    0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
)  # fmt: skip
"""Seconds, from 10 µs: a local decision takes tens of microseconds, a Redis one about 1 ms."""


def seconds_since(started_ns: int) -> float:
    """Seconds (what Prometheus histograms take) since a ``time.perf_counter_ns()`` reading."""
    return (time.perf_counter_ns() - started_ns) / 1e9


class Metrics:
    """The collectors; counters of state owned elsewhere are read at scrape time."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._watched: _Callback | None = None
        self._decided: dict[tuple[str, str, str], tuple[Histogram, Counter]] = {}
        self._round_trips: dict[str, Histogram] = {}
        registry = self.registry
        self.decision_seconds = Histogram(
            "creditgate_decision_seconds",
            "Time to answer check, reserve, commit and release, inside the service.",
            ["operation", "outcome"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.decisions = Counter(
            "creditgate_decisions",
            "Answers by operation and reason (check, reserve) or result (commit, release).",
            ["operation", "reason"],
            registry=registry,
        )
        self.fallback_decisions = Counter(
            "creditgate_fallback_decisions",
            "Answers decided by the sidecar alone while Redis could not answer (features with "
            "on_store_unavailable: allow), by operation and outcome.",
            ["operation", "outcome"],
            registry=registry,
        )
        self.request_errors = Counter(
            "creditgate_request_errors",
            "Requests answered with an error (bad input, not found, auth, store, internal), "
            "by transport and error code, wherever they were refused.",
            ["transport", "code"],
            registry=registry,
        )
        self.redis_seconds = Histogram(
            "creditgate_redis_seconds",
            "Round trip of one Redis command or Lua script, by command or script name.",
            ["command"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.redis_deadline_used = Histogram(
            "creditgate_redis_deadline_used_ratio",
            "Share of its Redis deadline one request used (1.0: it ran out), per request that "
            "called Redis.",
            buckets=(0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.0),
            registry=registry,
        )
        self.redis_errors = Counter(
            "creditgate_redis_errors",
            "Redis commands that failed: connection lost, timeout, or an error reply.",
            ["command"],
            registry=registry,
        )
        self.lua_errors = Counter(
            "creditgate_lua_errors",
            "Lua scripts that raised an error inside Redis (a bug, never a denial).",
            ["script"],
            registry=registry,
        )
        self.redis_up = Gauge(
            "creditgate_redis_up",
            "1 while the last Redis command succeeded, 0 after one failed.",
            registry=registry,
        )
        self.redis_up.set(1)
        self.catalog_reloads = Counter(
            "creditgate_catalog_reloads",
            "Catalog file changes seen: applied, or rejected as invalid (old catalog kept).",
            ["result"],
            registry=registry,
        )
        self.catalog_info = Gauge(
            "creditgate_catalog_info", "The catalog in force (value 1).", ["version"],
            registry=registry,
        )  # fmt: skip

    def decided(
        self, operation: str, outcome: str, reason: str, started_ns: int, *, fallback: bool = False
    ) -> None:
        """Count an answer timed from ``started_ns`` (``time.perf_counter_ns()``)."""
        if fallback:
            self.fallback_decisions.labels(operation, outcome).inc()
        elapsed = seconds_since(started_ns)
        key = (operation, outcome, reason)
        children = self._decided.get(key)
        if children is None:  # resolving labels costs more than observing: once per key
            children = self._decided[key] = (
                self.decision_seconds.labels(operation, outcome),
                self.decisions.labels(operation, reason),
            )
        children[0].observe(elapsed)
        children[1].inc()

    def redis_round_trip(self, command: str, started_ns: int) -> None:
        elapsed = seconds_since(started_ns)
        child = self._round_trips.get(command)
        if child is None:
            child = self._round_trips[command] = self.redis_seconds.labels(command)
        child.observe(elapsed)

    def catalog_in_force(self, version: str) -> None:
        self.catalog_info.clear()
        self.catalog_info.labels(version).set(1)

    def watch(self, collector: Callable[[], Iterator[Metric]]) -> None:
        """Metrics computed at scrape time from state another object owns; a second call
        replaces the first (a new Service on the same store takes over its gauges)."""
        if self._watched is not None:
            self.registry.unregister(self._watched)
        self._watched = _Callback(collector)
        self.registry.register(self._watched)


class _Callback(Collector):
    def __init__(self, collect: Callable[[], Iterator[Metric]]) -> None:
        self._collect = collect

    def collect(self) -> Iterator[Metric]:
        return self._collect()


def counter(name: str, documentation: str, value: int) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)


def gauge(name: str, documentation: str, value: int) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)
