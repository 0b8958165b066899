"""Customer snapshots held in process: a bounded TTL cache in front of Redis.

A snapshot is the customer's plan and compiled contract overrides, checked against the
catalog in force. Loading one also issues the plan's recurring grants for the current month
(idempotent by key, so any number of sidecars may race to do it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import msgspec
from cachetools import TTLCache
from redis.exceptions import RedisError

from sidecar.catalog.compile import compile_overrides
from sidecar.catalog.model import Catalog, Contract
from sidecar.catalog.spec import ContractSpec
from sidecar.engine.customer import CustomerSnapshot
from sidecar.engine.periods import month_end_ms, period_ids, period_start_ms
from sidecar.errors import CreditgateError, StoreError
from sidecar.settings import FALLBACK_CUSTOMER_TTL_S
from sidecar.store.redis_store import RedisStore, StoredCustomer

__all__ = ["CustomerDirectory"]

log = logging.getLogger(__name__)


RESUBSCRIBE_DELAY_S = 1.0


class CustomerDirectory:
    """Snapshots cached for at most ``ttl_s``, and dropped at once when any sidecar publishes a
    change. While the change feed is down the cache is bypassed, so it never lags far behind.
    """

    def __init__(
        self,
        store: RedisStore,
        *,
        max_entries: int = 100_000,
        ttl_s: float = 30.0,
        known_ttl_s: float = FALLBACK_CUSTOMER_TTL_S,
    ):
        self.store = store
        self._cache: TTLCache[str, tuple[tuple[str, str], CustomerSnapshot]] = TTLCache(
            max_entries, ttl_s
        )
        self._known: TTLCache[str, StoredCustomer] = TTLCache(max_entries, known_ttl_s)
        """The customer as last read from Redis, for deciding in fallback while it is down."""
        self._trusted = True
        self.listeners: list[Callable[[str], None]] = []
        """Also told each name published on the change feed (``""``: forget everything)."""
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._cache)

    @property
    def trusted(self) -> bool:
        """Whether the change feed is followed, so that what is cached can be trusted."""
        return self._trusted

    def invalidate(self, customer: str) -> None:
        self._cache.pop(customer, None)
        self._known.pop(customer, None)
        for listener in self.listeners:
            listener(customer)

    def _forget_all(self) -> None:
        self._cache.clear()
        for listener in self.listeners:
            listener("")

    def last_known(self, customer: str, catalog: Catalog) -> CustomerSnapshot | None:
        """The customer as last read from Redis (within ``known_ttl_s``), for fallback: None
        when this sidecar has not read it."""
        stored = self._known.get(customer)
        if stored is None:
            return None
        overrides = self._overrides(customer, stored.overrides, catalog)
        return CustomerSnapshot(id=customer, plan=stored.plan, overrides=overrides)

    async def changed(self, customer: str) -> None:
        """Forget ``customer`` here and tell every other sidecar on this Redis to forget it."""
        self.invalidate(customer)
        await self.store.publish(self.store.layout.changes_channel, customer)

    async def follow_changes(self, subscribed: asyncio.Event | None = None) -> None:
        """Drop snapshots as changes are published, until cancelled; resubscribes on failure."""
        while True:
            client = self.store.subscriber()
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(self.store.layout.changes_channel)
                    self._forget_all()
                    self._trusted = True
                    if subscribed is not None:
                        subscribed.set()
                    async for message in pubsub.listen():
                        if message["type"] == "message":
                            self.invalidate(message["data"].decode())
            except (RedisError, OSError) as error:
                log.warning("customer change feed lost (%s); bypassing the cache", error)
            finally:
                self._trusted = False
                self._forget_all()
                await client.aclose()
            await asyncio.sleep(RESUBSCRIBE_DELAY_S)

    async def get(self, customer: str, catalog: Catalog, now_ms: int) -> CustomerSnapshot | None:
        """The customer's snapshot, or None when no such customer exists."""
        month = period_ids(now_ms).month
        cached = self._cache.get(customer) if self._trusted else None
        # A snapshot is only good for the catalog and the month it was loaded in: a new month
        # must issue the plan's grants before the first call spends.
        if cached is not None and cached[0] == (catalog.version, month):
            self.hits += 1
            return cached[1]
        self.misses += 1
        stored = await self.store.get_customer(customer)
        if stored is None:
            if customer in self._known:  # it was there: Redis lost it, the customer is real
                raise StoreError(
                    f"Redis no longer has customer {customer!r}, read from it before: it has "
                    "lost state; restore it with `creditgate ledger rebuild --all`"
                )
            return None
        self._known[customer] = stored
        if stored.granted_month != month and stored.plan in catalog.plans:
            await self.issue_plan_grants(customer, stored.plan, catalog, now_ms)
        overrides = self._overrides(customer, stored.overrides, catalog)
        snapshot = CustomerSnapshot(id=customer, plan=stored.plan, overrides=overrides)
        self._cache[customer] = ((catalog.version, month), snapshot)
        return snapshot

    @staticmethod
    def _overrides(customer: str, text: str, catalog: Catalog) -> Contract | None:
        if not text:
            return None
        try:
            return compile_overrides(msgspec.json.decode(text, type=ContractSpec), catalog)
        except CreditgateError as error:
            log.warning(
                "customer %s: overrides no longer fit catalog %s: %s; ignored",
                customer,
                catalog.version,
                error,
            )
            return None

    async def issue_plan_grants(
        self, customer: str, plan_id: str, catalog: Catalog, now_ms: int, *, prorated: bool = False
    ) -> None:
        """Issue this month's recurring grants of the plan; a retry issues nothing twice.
        ``prorated`` (a plan change in the middle of a month): each for the share of the month
        left, rounded down to the nano-credit; the next month's is whole again."""
        month = period_ids(now_ms).month
        start, end = period_start_ms("month", now_ms), month_end_ms(now_ms)
        for index, grant in enumerate(catalog.plans[plan_id].grants):
            amount = grant.amount_nanos
            if prorated:
                amount = amount * (end - now_ms) // (end - start)
            if amount == 0:
                continue
            await self.store.grant(
                customer,
                idempotency_key=f"plan:{plan_id}:{index}:{month}",
                credit_type=grant.credit_type,
                amount_nanos=amount,
                priority=catalog.credit_types[grant.credit_type].priority,
                expires_at_ms=month_end_ms(now_ms),
                now_ms=now_ms,
                reason="plan",
            )
        await self.store.mark_granted(customer, month)
