"""The Redis layout: every key, field and lifetime Creditgate writes, named once.

Every key starts with the environment's head (``Layout.head``): ``cg:`` in ``live``,
``cg@<environment>:`` in any other (sidecar/environment.py), so that environments share a
Redis and never a key. Below, ``cg:`` stands for the head.
Customers map to a fixed number of shards (``Layout.shard``: a stable hash of the id); every
key of a customer carries its shard's hash tag, ``cg:{s:<shard>}:c:<customer>:<name>``, so one
script touches one slot, on one node or a Redis Cluster. Each shard has one event stream and
one set of its customers, ``cg:{s:<shard>}:events`` and ``:customers``: the ledger reads as
many streams as there are shards, whatever the number of customers.
Names below without a customer are relative to the customer's prefix.
The Lua scripts get the same names from ``lua_prelude()``, generated from this module; the
sidecar, the ledger, its rebuild and reconcile, and the tests use ``Layout``'s builders.
Period ids (``d20261119``, ``m202611``, ``life``) are engine/periods.py's.
"""

from __future__ import annotations

import zlib

from sidecar.environment import LIVE
from sidecar.money import FEMTOS_PER_NANO, NANOS_PER_CREDIT

__all__ = [
    "ADMIN_TOKENS",
    "ALERTED",
    "ALERTED_SUFFIX",
    "ALERTS",
    "ALERT_BALANCE",
    "BALANCE",
    "BUCKET",
    "BUCKETS",
    "BUDGETS",
    "CARRY",
    "CHANGES",
    "CUSTOMER",
    "CUSTOMERS",
    "DAY_COUNTER_TTL_MS",
    "EPOCH",
    "EVENTS",
    "EXPIRED_RETAIN_MS",
    "GENERATION",
    "GRANTED",
    "GRANTED_MONTH",
    "HELD",
    "HOLDS",
    "HOLD_EXPIRY",
    "IDEMPOTENCY_WINDOW_MS",
    "LAYOUT",
    "LAYOUT_LOST",
    "LAYOUT_MARKED",
    "LEGACY_REGISTRY",
    "MONTH_COUNTER_TTL_MS",
    "OVERRIDES",
    "PLAN",
    "PROXY_KEYS",
    "RATE_REQUESTS",
    "RATE_TOKENS",
    "RATE_WINDOW_TTL_MS",
    "RECORD_WINDOW_MS",
    "REFUNDED",
    "RESERVES_PREFIX",
    "RESOLVED_PREFIX",
    "SEP",
    "SESSION_TTL_MS",
    "SHARDS_DEFAULT",
    "SHARDS_MAX",
    "UNCOVERED",
    "UPDATED_MS",
    "USED",
    "Layout",
    "budget_field",
    "budget_value",
    "counter_fields",
    "counter_ttl_ms",
    "head",
    "idem_name",
    "lua_prelude",
    "parse_budget_value",
    "quota_field",
    "rate_key",
    "record_window",
    "reserves_key",
    "resolved_key",
    "session_key",
    "shard_of_stream",
    "usage_key",
]

DAY_MS = 86_400_000

# Keys of a customer, relative to its prefix.
CUSTOMER = "customer"
"""Hash: plan, overrides (JSON text), updated_ms, granted_month. KEYS[1] of every script."""
BUCKET = "bucket"
"""Hash: burn key (engine/burn.py) -> remaining nano-credits of that grant."""
BUCKETS = "buckets"
"""Sorted set of the burn keys, all at score 0: lexical order is the burn order."""
BUDGETS = "budgets"
"""Hash: ``budget_field(scope, period)`` -> ``<limit nanos>|<hard or soft>``."""
ALERTS = "alerts"
"""Hash: ``budget_field(scope, period)``, or ALERT_BALANCE, -> the customer's own alert rule
(engine/alerts.py), in place of the plan's default."""
ALERT_BALANCE = "balance"
ALERTED = "alerted"
"""Hash: the balance thresholds (nanos) that fired and were not yet topped up past."""
ALERTED_SUFFIX = ":alerted"
"""Appended to a period counter's key: hash of the budget thresholds fired in that period,
with the counter's lifetime (a new period fires them again)."""
REFUNDED = "refunded"
"""Hash: a committed call's event id -> nano-credits refunded of it (store/lua/correct.lua)."""
BALANCE = "balance"
"""Hash: ``held`` (nano-credits in flight) and ``frac`` (CARRY)."""
HOLDS = "holds"
"""Hash: reservation id -> JSON record of a hold in flight (increments, attribution)."""
HOLD_EXPIRY = "hold_expiry"
"""Sorted set: reservation id by expiry time (ms) of the holds in flight."""
RESERVES_PREFIX = "reserves:"
"""Before ``record_window(ms)``: hash of the reserves placed in that window, idempotency key ->
``<reservation id>|<nanos held>``."""
RESOLVED_PREFIX = "resolved:"
"""Before ``record_window(ms)``: hash of the holds placed in that window and since resolved,
reservation id -> what a retry needs, compact (lua/_lib.lua, ``resolve``)."""

# Keys of a shard, relative to its prefix ``cg:{s:<shard>}:``.
EVENTS = "events"
"""Stream of the shard's customers' movements of money, read by the ledger."""
CUSTOMERS = "customers"
"""Set of the shard's customer ids (upsert_customer.lua adds to it)."""
GENERATION = "generation"
"""String: the deployment's generation id (LAYOUT_KEY's ``generation``), the shard's marker
that Redis holds the state the ledger knows of. Every script refuses to run on a shard
without it (``LOSTSTATE``): a Redis restarted empty, flushed, or fenced by the ledger after
it lost state (ledger/generation.py) answers ``store_unavailable``, never ``unknown_customer``.
"""
EPOCH = "epoch"
"""Integer the ledger increments every check (ledger/generation.py, ``Epochs``): a value not
above the one it last got means the shard lost writes it had acknowledged (rolled back)."""

# Fields.
PLAN, OVERRIDES, UPDATED_MS, GRANTED_MONTH = "plan", "overrides", "updated_ms", "granted_month"
"""Fields of CUSTOMER; GRANTED_MONTH is the month whose plan grants were issued."""
SEP = "|"
"""Between a node (``team:eng``) and what is counted, or a scope and its period."""
RATE_REQUESTS, RATE_TOKENS = "r", "t"
"""What a rate window counts after ``<scope>|``: requests and tokens."""
HELD = "held"
USED = "used"
CARRY = "frac"
"""Field of BALANCE: the carried sub-nano remainder, in femto-credits (0..999999)."""
UNCOVERED = "overage|used"
"""Field of the month's usage key: cost no credit covered this month. Spelt as in the first
releases, so that counters live in Redis today keep counting across an upgrade."""
GRANTED = '{"result":"granted"}'
"""What grant.lua stores under a grant's idempotency key."""

# Lifetimes.
DAY_COUNTER_TTL_MS = 3 * DAY_MS
"""A day's usage counters live this long after the last hold placed in them."""
MONTH_COUNTER_TTL_MS = 70 * DAY_MS
SESSION_TTL_MS = 30 * DAY_MS
RATE_WINDOW_TTL_MS = 120_000
"""A one-minute rate window lives two minutes."""
IDEMPOTENCY_WINDOW_MS = 3_600_000
"""Default of the ``idempotency_window_ms`` setting: a retried reserve, commit or release is
answered as the first one at least this long (a reserve's record also while its hold is in
flight). Redis keeps about 250 bytes per model call for this long."""
EXPIRED_RETAIN_MS = DAY_MS
"""An expired hold's record stays this long in HOLDS, so that a late commit is still charged."""
RECORD_WINDOW_MS = 600_000
"""Reserve and resolution records are kept in one hash per window of this many ms (of the
reserve's time), which expires as a whole: no per-record index, no sweeper."""

SHARDS_DEFAULT = 256
SHARDS_MAX = 16384
"""As many as Redis Cluster has slots: more shards could not spread any further."""
LAYOUT = "layout"
"""Hash ``cg:layout``: ``shards`` -> the deployment's shard count, written once
(store/topology.py); ``generation`` -> the generation id the shards' markers hold;
LAYOUT_MARKED once every marker was written; LAYOUT_LOST while the ledger finds Redis without
the state it knows of."""
LAYOUT_MARKED = "marked"
LAYOUT_LOST = "lost"
LEGACY_REGISTRY = "customers"
"""Set ``cg:customers``: every customer id in the layout before shards
(``cg:{c:<customer>}:...``, one stream per customer); ``creditgate store migrate`` moves such
a deployment."""
CHANGES = "customers:changed"
"""Pub/sub channel ``cg:customers:changed``: a customer id whose plan or overrides changed
(customers.py), or a credential's namespace, ``:`` and its id, when that credential was
revoked."""
PROXY_KEYS = "proxy-key"
"""The namespace of proxy keys (bearer tokens of the proxy listener)."""
ADMIN_TOKENS = "admin-token"
"""The namespace of scoped admin tokens (an end customer's admins and viewers)."""

_HEAD, _SHARD, _TAIL, _CUSTOMER_HEAD = "cg:", "{s:", "}", ":c:"


def head(environment: str) -> str:
    """What every key of ``environment`` starts with: ``cg:`` in live, ``cg@<name>:`` else."""
    return _HEAD if environment == LIVE else f"cg@{environment}:"


class Layout:
    """Where keys live in a deployment of ``shards`` shards, in ``environment``."""

    __slots__ = ("environment", "head", "shards")

    def __init__(self, shards: int = SHARDS_DEFAULT, environment: str = LIVE) -> None:
        if not 1 <= shards <= SHARDS_MAX:
            raise ValueError(f"shards must be 1 to {SHARDS_MAX}, got {shards}")
        self.shards = shards
        self.environment = environment
        self.head = head(environment)

    @property
    def layout_key(self) -> str:
        return self.head + LAYOUT

    @property
    def legacy_registry_key(self) -> str:
        return self.head + LEGACY_REGISTRY

    @property
    def changes_channel(self) -> str:
        return self.head + CHANGES

    def credential_key(self, namespace: str, credential_id: str) -> str:
        """String: a proxy key's or admin token's record, JSON with the SHA-256 of the whole
        token (service/keys.py)."""
        return f"{self.head}{namespace}:{credential_id}"

    def credentials_key(self, namespace: str, customer: str) -> str:
        """Set: the ids of a customer's proxy keys or admin tokens, for listing."""
        return f"{self.head}{namespace}s:{customer}"

    def workers_key(self, group: str) -> str:
        """Sorted set: the live ledger workers of a consumer group by last heartbeat (ms)."""
        return f"{self.head}workers:{group}"

    def shard(self, customer: str) -> int:
        """The customer's shard: CRC-32 of its id, stable across processes and releases."""
        return zlib.crc32(customer.encode()) % self.shards

    def shard_key(self, shard: int, name: str) -> str:
        """A key of a shard: ``EVENTS`` or ``CUSTOMERS``."""
        return f"{self.head}{_SHARD}{shard}{_TAIL}:{name}"

    def stream(self, shard: int) -> str:
        return self.shard_key(shard, EVENTS)

    def streams(self) -> list[str]:
        return [self.stream(shard) for shard in range(self.shards)]

    def stream_of(self, customer: str) -> str:
        return self.stream(self.shard(customer))

    def prefix(self, customer: str) -> str:
        return f"{self.head}{_SHARD}{self.shard(customer)}{_TAIL}{_CUSTOMER_HEAD}{customer}"

    def key(self, customer: str, name: str) -> str:
        """The full key of ``name`` (relative, like ``BUCKET`` or ``usage_key(...)``)."""
        return f"{self.prefix(customer)}:{name}"

    def customer_key(self, customer: str) -> str:
        """KEYS[1] of every script; the scripts name the customer's other keys from it."""
        return self.key(customer, CUSTOMER)

    def idem_key(self, customer: str, operation: str, idempotency_key: str) -> str:
        return self.key(customer, idem_name(operation, idempotency_key))


def shard_of_stream(stream: bytes | str) -> int:
    """``cg:{s:17}:events`` (in any environment) -> 17."""
    text = stream.decode() if isinstance(stream, bytes) else stream
    return int(text.partition(_SHARD)[2].partition(_TAIL)[0])


def idem_name(operation: str, idempotency_key: str) -> str:
    """An idempotency record; ``operation`` is ``r`` (reserve), ``g`` (grant) or ``x`` (a
    correction: refund or adjustment)."""
    return f"idem:{operation}:{idempotency_key}"


def record_window(ms: int) -> int:
    """The window whose record hashes (RESERVES_PREFIX, RESOLVED_PREFIX) keep a reserve of
    time ``ms``: a reservation id's window follows from the time in it."""
    return ms // RECORD_WINDOW_MS


def reserves_key(window: int) -> str:
    return f"{RESERVES_PREFIX}{window}"


def resolved_key(window: int) -> str:
    return f"{RESOLVED_PREFIX}{window}"


def usage_key(period_id: str) -> str:
    """Hash of use and holds in one period (``d20261119``, ``m202611``, ``life``)."""
    return f"u:{period_id}"


def session_key(session: str) -> str:
    """Hash of one session's use and holds (fields USED and HELD)."""
    return f"s:{session}"


def rate_key(minute: int) -> str:
    """Hash of one one-minute rate window: ``<scope>|r`` requests, ``<scope>|t`` tokens."""
    return f"rl:{minute}"


def counter_fields(node: str) -> tuple[str, str]:
    """(used, held) fields of a node in a usage key: a budget scope (``team:eng|used``) or
    a quota (``quota_field(feature)``)."""
    return f"{node}{SEP}{USED}", f"{node}{SEP}{HELD}"


def quota_field(feature: str) -> str:
    """The node a metered feature's quota counts under in a usage key."""
    return f"q:{feature}"


def tier_field(model: str, kind: str) -> str:
    """Field of the month's usage key: units of ``kind`` on ``model`` priced by graduated
    tiers this month, the counter their tiers are read from (engine/tiers.py)."""
    return f"tier:{model}{SEP}{kind}"


def budget_field(scope: str, period: str) -> str:
    return f"{scope}{SEP}{period}"


def budget_value(limit_nanos: int, mode: str) -> str:
    return f"{limit_nanos}{SEP}{mode}"


def parse_budget_value(value: str) -> tuple[int, str]:
    """(limit nanos, mode) of a BUDGETS value."""
    limit, mode = value.split(SEP)
    return int(limit), mode


def counter_ttl_ms(name: str) -> int | None:
    """How long a counter key (relative name) lives after its last hold; None: for ever."""
    if name.startswith(session_key("")):
        return SESSION_TTL_MS
    period = name.removeprefix(usage_key(""))
    if period.startswith("d"):
        return DAY_COUNTER_TTL_MS
    if period.startswith("m"):
        return MONTH_COUNTER_TTL_MS
    return None


def _lua(value: str | int) -> str:
    return str(value) if isinstance(value, int) else "'" + value.replace("'", "\\'") + "'"


def lua_prelude() -> str:
    """The layout (and the money units) as Lua locals, prepended to every script."""
    names: dict[str, str | int] = {
        "CUSTOMER_SUFFIX": ":" + CUSTOMER,
        "SHARD_END": _TAIL,
        "PLAN": PLAN,
        "OVERRIDES": OVERRIDES,
        "UPDATED_MS": UPDATED_MS,
        "USAGE_PREFIX": usage_key(""),
        "SESSION_PREFIX": session_key(""),
        "QUOTA_PREFIX": quota_field(""),
        "RATE_PREFIX": rate_key(0).removesuffix("0"),
        "SEP": SEP,
        "RATE_REQUESTS": RATE_REQUESTS,
        "RATE_TOKENS": RATE_TOKENS,
        "NANOS_PER_CREDIT": NANOS_PER_CREDIT,
        "FEMTOS_PER_NANO": FEMTOS_PER_NANO,
        "BUCKET": BUCKET,
        "BUCKETS": BUCKETS,
        "BUDGETS": BUDGETS,
        "ALERTS": ALERTS,
        "ALERT_BALANCE": ALERT_BALANCE,
        "ALERTED": ALERTED,
        "ALERTED_SUFFIX": ALERTED_SUFFIX,
        "REFUNDED": REFUNDED,
        "BALANCE": BALANCE,
        "HOLDS": HOLDS,
        "HOLD_EXPIRY": HOLD_EXPIRY,
        "RESERVES_PREFIX": reserves_key(0).removesuffix("0"),
        "RESOLVED_PREFIX": resolved_key(0).removesuffix("0"),
        "EVENTS": EVENTS,
        "CUSTOMERS": CUSTOMERS,
        "GENERATION": GENERATION,
        "HELD": HELD,
        "USED": USED,
        "CARRY": CARRY,
        "UNCOVERED": UNCOVERED,
        "DAY_COUNTER_TTL_MS": DAY_COUNTER_TTL_MS,
        "MONTH_COUNTER_TTL_MS": MONTH_COUNTER_TTL_MS,
        "SESSION_TTL_MS": SESSION_TTL_MS,
        "RATE_WINDOW_TTL_MS": RATE_WINDOW_TTL_MS,
        "EXPIRED_RETAIN_MS": EXPIRED_RETAIN_MS,
    }
    lines = [f"local {name} = {_lua(value)}" for name, value in names.items()]
    return "-- Generated from sidecar/store/layout.py.\n" + "\n".join(lines) + "\n"
