"""What every part of the service shares: the store, the catalog in force, the clock, the
customer directory and the holds placed here; the customer lookups operations start with,
and the gauges of the caches."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from cachetools import TLRUCache
from prometheus_client.core import Metric

from sidecar.catalog.model import Catalog
from sidecar.customers import CustomerDirectory
from sidecar.engine.customer import CustomerSnapshot
from sidecar.errors import NotFound
from sidecar.ids import check_id
from sidecar.metrics import Metrics, counter, gauge
from sidecar.service.fallback import Fallbacks, LocalHold
from sidecar.service.keys import ADMIN_TOKENS, PROXY_KEYS, Keyring
from sidecar.service.spool import Spool
from sidecar.service.unsettled import Unsettled
from sidecar.store.redis_store import RedisStore
from sidecar.times import wall_clock_ms

__all__ = ["Context"]

LOCAL_HOLDS_MAX = 100_000


def _hold_expiry(_rid: str, hold: LocalHold, _now: object) -> int:
    return hold.expires_at_ms


class Context:
    def __init__(
        self,
        store: RedisStore,
        catalog: Catalog,
        *,
        clock: Callable[[], int] = wall_clock_ms,
        customers: CustomerDirectory | None = None,
        spool: Spool | None = None,
    ) -> None:
        self.store = store
        self.metrics: Metrics = store.metrics
        self.catalog = catalog
        self.metrics.catalog_in_force(catalog.version)
        self.clock = clock
        # Not `customers or ...`: an empty directory has len 0, so it is falsy.
        self.customers = customers if customers is not None else CustomerDirectory(store)
        self.keyring = Keyring(store, self.customers, PROXY_KEYS)
        """Proxy keys (service/keys.py)."""
        self.tokens = Keyring(store, self.customers, ADMIN_TOKENS)
        """Scoped admin tokens (service/keys.py, access.py)."""
        # The holds placed here, so that their commit needs no extra read.
        self.holds: TLRUCache[str, LocalHold] = TLRUCache(
            LOCAL_HOLDS_MAX, _hold_expiry, timer=clock
        )
        self.unsettled = Unsettled(store, clock)
        """Reserves sent to Redis that it never answered: voided in the background."""
        self.fallback = Fallbacks(store, spool if spool is not None else Spool(None), clock)
        """Calls answered while Redis could not, and commits it never answered: replayed."""
        self.metrics.watch(self._state)

    def _state(self) -> Iterator[Metric]:
        customers = self.customers
        yield counter(
            "creditgate_customer_cache_hits", "Customer lookups answered from the cache.",
            customers.hits,
        )  # fmt: skip
        yield counter(
            "creditgate_customer_cache_misses", "Customer lookups that read Redis.",
            customers.misses,
        )  # fmt: skip
        yield gauge("creditgate_customer_cache_entries", "Customers cached.", len(customers))
        self.holds.expire()
        yield gauge(
            "creditgate_holds_open",
            "Holds this sidecar placed that are not yet committed, released or expired.",
            len(self.holds),
        )
        yield gauge(
            "creditgate_unsettled_calls",
            "Reserves Redis never answered, whose holds are being voided.",
            len(self.unsettled),
        )
        yield from self.fallback.metrics()

    async def close(self) -> None:
        """Last tries at what Redis has not answered; the spool keeps the rest for next start."""
        await self.unsettled.close()
        await self.fallback.close()

    def swap_catalog(self, catalog: Catalog) -> None:
        """Replace the catalog whole; requests in flight keep the one they started with."""
        self.catalog = catalog
        self.metrics.catalog_in_force(catalog.version)

    async def customer(
        self, customer: str, catalog: Catalog, now_ms: int
    ) -> CustomerSnapshot | None:
        check_id("customer", customer)
        return await self.customers.get(customer, catalog, now_ms)

    async def existing(self, customer: str, catalog: Catalog, now_ms: int) -> CustomerSnapshot:
        snapshot = await self.customer(customer, catalog, now_ms)
        if snapshot is None:
            raise NotFound(
                "customer", f"no customer {customer!r}; create it first with the admin API"
            )
        return snapshot
