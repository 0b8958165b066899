"""Settings: one typed struct, from flags or ``CREDITGATE_*`` environment variables; fails fast."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

import msgspec

from sidecar.environment import LIVE, check_environment
from sidecar.errors import SettingsError
from sidecar.store.layout import IDEMPOTENCY_WINDOW_MS, SHARDS_MAX
from sidecar.store.topology import CLUSTER_SCHEMES, NODE_SCHEMES

__all__ = [
    "ENVIRONMENT_HELP", "REDIS_HELP", "SHARDS_HELP", "Settings", "SettingsError", "Source",
    "add_flags", "settings_from",
]  # fmt: skip


T = TypeVar("T", bound=msgspec.Struct)

SPOOL_MAX_ENTRIES = 100_000
SPOOL_MAX_BYTES = 64 * 1024 * 1024
"""Default bounds of the spool (service/spool.py): a spooled call takes about 1 KB."""
FALLBACK_CUSTOMER_TTL_S = 3600
"""How long a customer read from Redis may still be decided in fallback (plan, contract)."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    catalog: str
    """Catalog file (YAML)."""
    redis: str
    """Redis URL: redis://host:port/db for one node, redis+cluster://host:port for a cluster."""
    environment: str = LIVE
    """Namespaces every Redis key (sidecar/environment.py): a sandbox beside live."""
    host: str = "127.0.0.1"
    port: int = 7070
    admin_port: int = 7071
    grpc_port: int = 7072
    grpc_admin_port: int = 7073
    http: bool = True
    """Serve HTTP (the public API, and the admin API when a token is set)."""
    grpc: bool = True
    """Serve gRPC (the public service, and the admin service when a token is set)."""
    admin_token: str | None = None
    """The admin listeners run only when a token is set."""
    cache_max_entries: int = 100_000
    cache_ttl_s: int = 30
    redis_timeout_ms: int = 250
    redis_deadline_ms: int = 250
    """All the Redis work of one request (queueing, connecting, every command) ends by then."""
    idempotency_window_ms: int = IDEMPOTENCY_WINDOW_MS
    """How long a retried reserve, commit or release is answered as the first (store/layout.py)."""
    shards: int | None = None
    """Shards of the deployment (store/layout.py), chosen once; None: as recorded in Redis, or
    the default (256) for a new deployment."""
    max_body_bytes: int = 65_536
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = None
    """A listener of its own for /metrics, /healthz and /readyz (Prometheus, kubelet probes),
    so the API can stay on localhost; None: none (``/metrics`` is on the public port too)."""
    catalog_reload_ms: int = 2000
    """How often the catalog file is checked for a change; 0: never."""
    spool_dir: str | None = None
    """Directory of the durable spool (service/spool.py): calls answered in fallback and
    commits Redis never answered, replayed when it answers. None: in memory, lost on a crash."""
    spool_max_entries: int = SPOOL_MAX_ENTRIES
    spool_max_bytes: int = SPOOL_MAX_BYTES
    redis_wait_replicas: int = 0
    """A commit is answered ``committed`` once this many replicas hold it (Redis ``WAIT``)."""
    redis_wait_timeout_ms: int = 50
    """How long a commit waits for those replicas; past it, its outcome is unknown (spooled)."""
    redis_max_memory_bytes: int | None = None
    """Past this Redis ``used_memory``, reserves are refused (store/memory.py); None: no bound."""
    fallback_customer_ttl_s: int = FALLBACK_CUSTOMER_TTL_S
    """How long after it was last read from Redis a customer may be decided in fallback."""
    proxy_upstreams: str | None = None
    """The proxy's upstreams file (sidecar/proxy/upstreams.py); the proxy runs only with one."""
    proxy_port: int = 7075
    proxy_feature: str = "chat"
    """The feature a proxied call is for, unless its X-Creditgate-Feature header names one."""
    proxy_max_body_bytes: int = 4_194_304


REDIS_HELP = (
    "Redis URL: redis://127.0.0.1:6379/0 for one node, redis+cluster://host:port for a "
    "Redis Cluster (rediss:// and rediss+cluster:// with TLS)"
)
SHARDS_HELP = (
    f"shards of a new deployment, 1 to {SHARDS_MAX}, chosen once (default: as recorded in "
    "Redis, else 256)"
)
ENVIRONMENT_HELP = (
    "the environment, namespacing every Redis key and the ledger's schema: live, or a "
    "sandbox beside it on the same servers, e.g. sandbox (default live)"
)
_HELP = {
    "catalog": "catalog file (YAML)",
    "redis": REDIS_HELP,
    "environment": ENVIRONMENT_HELP,
    "host": "address to bind (default 127.0.0.1)",
    "port": "public API port (default 7070; 0 picks a free one)",
    "admin_port": "admin API port (default 7071; runs only with an admin token)",
    "grpc_port": "gRPC port (default 7072; 0 picks a free one)",
    "grpc_admin_port": "gRPC admin port (default 7073; runs only with an admin token)",
    "http": "serve HTTP: true or false (default true)",
    "grpc": "serve gRPC: true or false (default true)",
    "admin_token": "bearer token the admin API requires",
    "cache_max_entries": "customers cached in process (default 100000)",
    "cache_ttl_s": "seconds a cached customer lives without an invalidation (default 30)",
    "redis_timeout_ms": "Redis connect and read timeout of one connection (default 250)",
    "redis_deadline_ms": (
        "all the Redis work of one request, queueing included, ends this many ms after it "
        "arrived (default 250)"
    ),
    "idempotency_window_ms": (
        "a retried reserve, commit or release within this many ms returns its first answer "
        f"(default {IDEMPOTENCY_WINDOW_MS}, an hour; Redis keeps about 250 bytes per call)"
    ),
    "shards": SHARDS_HELP,
    "max_body_bytes": "largest request body accepted (default 65536)",
    "metrics_host": "address of the metrics listener (default 127.0.0.1)",
    "metrics_port": "port of a listener serving only /metrics, /healthz, /readyz (default: none)",
    "catalog_reload_ms": "check the catalog file for changes this often; 0: never (default 2000)",
    "spool_dir": (
        "directory of the durable spool of calls Redis has not applied (fallback answers, "
        "commits it never answered), replayed when it answers; default: in memory, lost on "
        "a crash"
    ),
    "spool_max_entries": (
        "calls the spool may hold; when full, features fall back to deny "
        f"(default {SPOOL_MAX_ENTRIES})"
    ),
    "spool_max_bytes": f"bytes the spool may hold (default {SPOOL_MAX_BYTES})",
    "redis_wait_replicas": (
        "answer a commit committed only once this many Redis replicas hold it (WAIT); when "
        "fewer acknowledge in time, the commit answers outcome_unknown and is replayed from "
        "the spool (default 0: as soon as the primary has it)"
    ),
    "redis_wait_timeout_ms": (
        "how long a commit waits for --redis-wait-replicas replicas, below "
        "--redis-deadline-ms (default 50)"
    ),
    "redis_max_memory_bytes": (
        "refuse new reserves (store_unavailable, scope redis/memory) while Redis uses this many "
        "bytes or more, e.g. while the ledger is down; commits go on (default: no bound)"
    ),
    "proxy_upstreams": (
        "YAML file of the upstreams the OpenAI-compatible proxy forwards each model to; the "
        "proxy listener runs only with one (default: none)"
    ),
    "proxy_port": "port of the proxy listener (default 7075; 0 picks a free one)",
    "proxy_feature": (
        "the catalog feature a proxied call is for when it sends no X-Creditgate-Feature "
        "(default chat)"
    ),
    "proxy_max_body_bytes": "largest request body the proxy accepts (default 4194304)",
    "fallback_customer_ttl_s": (
        "a customer last read from Redis this many seconds ago may still be decided in "
        f"fallback (default {FALLBACK_CUSTOMER_TTL_S})"
    ),
}


class Source(Generic[T]):
    """How a settings struct meets the command line: a flag and a variable per field.

    Flags win over environment variables, which win over ``overrides``, which win over the
    struct's defaults. Every error names the flag and the variable.
    """

    def __init__(
        self, kind: type[T], help_texts: dict[str, str], variable: Callable[[str], str]
    ) -> None:
        self.kind = kind
        self.help = help_texts
        self.variable = variable

    def name(self, field: str) -> str:
        return f"--{field.replace('_', '-')} (or {self.variable(field)})"

    def fail(self, field: str, problem: str) -> SettingsError:
        return SettingsError(f"{self.name(field)}: {problem}")

    def add_flags(self, parser: argparse.ArgumentParser) -> None:
        for field in self.kind.__struct_fields__:
            flag = "--" + field.replace("_", "-")
            help_text = f"{self.help[field]} [env {self.variable(field)}]"
            parser.add_argument(flag, dest=field, default=None, help=help_text)

    def load(
        self,
        flags: argparse.Namespace,
        environ: Mapping[str, str],
        *,
        required: tuple[str, ...],
        **overrides: Any,
    ) -> T:
        raw: dict[str, Any] = dict(overrides)
        for field in self.kind.__struct_fields__:
            value = getattr(flags, field, None)
            if value is None:
                value = environ.get(self.variable(field))
            if value is not None:
                raw[field] = value
        for field in required:
            if not raw.get(field):
                raise self.fail(field, f"is required: {self.help[field]}")
        try:
            return msgspec.convert(raw, self.kind, strict=False)
        except msgspec.ValidationError as error:
            field = str(error).rpartition("$.")[2].rstrip("`")
            expected = "true or false" if "`bool" in str(error) else "an integer"
            raise self.fail(field, f"must be {expected}, got {raw.get(field)!r}") from None

    def check_port(self, settings: T, *fields: str) -> None:
        for field in fields:
            port = getattr(settings, field)
            if port is not None and not 0 <= port <= 65_535:
                raise self.fail(field, "must be 0 to 65535")

    def check_positive(self, settings: T, *fields: str) -> None:
        for field in fields:
            if getattr(settings, field) <= 0:
                raise self.fail(field, "must be above 0")

    def check_redis(self, settings: T, field: str = "redis") -> None:
        url = getattr(settings, field)
        if not url.startswith(NODE_SCHEMES + CLUSTER_SCHEMES):
            raise self.fail(
                field, f"{url!r} is not a redis://, rediss://, unix:// or redis+cluster:// URL"
            )
        shards = getattr(settings, "shards", None)
        if shards is not None and not 1 <= shards <= SHARDS_MAX:
            raise self.fail("shards", f"must be 1 to {SHARDS_MAX}, got {shards}")
        if (environment := getattr(settings, "environment", None)) is not None:
            check_environment(environment, self.name("environment"))

    def check_token(self, settings: T, field: str) -> None:
        token = getattr(settings, field)
        if token is not None and len(token) < 16:
            raise self.fail(field, "use at least 16 characters")


SOURCE = Source(Settings, _HELP, lambda field: "CREDITGATE_" + field.upper())
"""``CREDITGATE_REDIS``, ``CREDITGATE_SHARDS`` and ``CREDITGATE_ENVIRONMENT`` are the
ledger's too (ledger/settings.py)."""


def add_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per setting; each defaults to its environment variable, then to the struct."""
    SOURCE.add_flags(parser)


def settings_from(
    flags: argparse.Namespace, environ: Mapping[str, str], **overrides: Any
) -> Settings:
    """Merge flags over environment over ``overrides`` over defaults; raise SettingsError."""
    settings = SOURCE.load(flags, environ, required=("catalog", "redis"), **overrides)
    if not settings.http and not settings.grpc:
        raise SettingsError("--http and --grpc are both false: nothing would be served")
    SOURCE.check_port(settings, "port", "admin_port", "grpc_port", "grpc_admin_port")
    SOURCE.check_port(settings, "metrics_port")
    SOURCE.check_port(settings, "proxy_port")
    SOURCE.check_positive(settings, "proxy_max_body_bytes")
    if settings.catalog_reload_ms < 0:
        raise SOURCE.fail("catalog_reload_ms", "must be 0 (never) or above")
    SOURCE.check_positive(
        settings, "cache_max_entries", "cache_ttl_s", "redis_timeout_ms", "max_body_bytes",
        "idempotency_window_ms", "redis_deadline_ms", "spool_max_entries", "spool_max_bytes",
        "fallback_customer_ttl_s",
    )  # fmt: skip
    if settings.redis_max_memory_bytes is not None:
        SOURCE.check_positive(settings, "redis_max_memory_bytes")
    if settings.redis_wait_replicas < 0:
        raise SOURCE.fail("redis_wait_replicas", "must be 0 (no wait) or a number of replicas")
    SOURCE.check_positive(settings, "redis_wait_timeout_ms")
    wait_ms, deadline_ms = settings.redis_wait_timeout_ms, settings.redis_deadline_ms
    if settings.redis_wait_replicas and wait_ms >= deadline_ms:
        raise SOURCE.fail(
            "redis_wait_timeout_ms",
            f"must be below redis_deadline_ms ({deadline_ms}): a commit waiting "
            "for replicas has to be answered within its deadline",
        )
    SOURCE.check_redis(settings)
    SOURCE.check_token(settings, "admin_token")
    return settings
