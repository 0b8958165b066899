"""Serving while Redis cannot answer, and applying what was answered once it can.

A feature with ``on_store_unavailable: allow`` is decided here when Redis is unreachable or
past its deadline: entitlements, models and prices from the cached customer and catalog as
usual, money against the feature's overdraft for the customer (service/overdraft.py), never
past it. Each such reserve, commit and release is written to the spool (service/spool.py)
before it is answered, and so is each commit or release whose outcome Redis never told.

The replayer applies the spool to Redis in order once it answers, with the ids and keys of
the live path, so a replay that runs twice moves money once. A reserve decided here is placed
with ``force``: it was answered allowed, so it is held (and its commit charged) even past a
cap Redis would have refused; its debit event says ``decided_by: fallback``. When Redis
already held a hold for that idempotency key (placed through another sidecar), the call is
that hold: the alias is kept in the spool, and every later commit or release of the id
answered here goes to the hold Redis has (``settled_as``), after a restart too.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Callable, Iterator
from typing import Literal

import msgspec
from prometheus_client.core import Metric

from sidecar.catalog.model import Fallback
from sidecar.engine.decide import MAX_TTL_MS, ReservePlan
from sidecar.engine.settle import Charge
from sidecar.errors import StoreError
from sidecar.metrics import counter, gauge
from sidecar.money import format_credits
from sidecar.service.overdraft import Overdraft, Pending
from sidecar.service.spool import (
    Entry,
    Spool,
    SpooledCommit,
    SpooledRelease,
    SpooledReserve,
    SpoolFull,
)
from sidecar.store.records import Attribution
from sidecar.store.redis_store import RedisStore
from sidecar.wire import CommitResponse, ReleaseResponse, ReserveResponse

__all__ = ["Fallbacks", "LocalHold"]

log = logging.getLogger(__name__)

RETRY_S = 0.1
"""How often the replayer tries again while Redis does not answer."""
BATCH = 256
ALIAS_KEPT_MS = 2 * MAX_TTL_MS
"""How long an alias is kept: well past the longest hold it can name."""


class LocalHold(msgspec.Struct, frozen=True):
    """What this sidecar knows of a hold it placed: enough to commit it without a read, and
    to settle it in fallback."""

    attribution: Attribution
    expires_at_ms: int
    held_nanos: int


class Fallbacks:
    def __init__(self, store: RedisStore, spool: Spool, clock: Callable[[], int]) -> None:
        self.store = store
        self.spool = spool
        self.clock = clock
        self.overdraft = Overdraft()
        self._aliases: dict[str, str] = {}
        """Reservation id decided here -> the one Redis had for the same idempotency key;
        kept in the spool too, so that a commit after a restart finds the hold."""
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.replayed = 0
        self.failed = 0

    def knows(self, rid: str) -> Pending | None:
        """The call, while it has spool entries Redis has not applied."""
        return self.overdraft.calls.get(rid)

    async def load(self) -> None:
        """At start: take back what a previous run left in the spool, and replay it."""
        self._aliases = await self.spool.aliases(self.clock() - ALIAS_KEPT_MS)
        after = 0
        while batch := await self.spool.read(after, BATCH):
            for entry_id, entry in batch:
                self._account(entry)
                after = entry_id
        if len(self.spool):
            log.warning("replaying %d spooled calls left by the last run", len(self.spool))
            self._kick()

    def _account(self, entry: Entry) -> None:
        """Restore the state ``entry`` was answered with (at start)."""
        rid, overdraft = entry.reservation_id, self.overdraft
        if isinstance(entry, SpooledReserve):
            plan = entry.plan
            overdraft.add(
                rid,
                Pending(entry.attribution, entry.idempotency_key, plan.hold_nanos,
                        plan.expires_at_ms, counted=True),
            )  # fmt: skip
        elif rid not in overdraft.calls:
            return  # a hold Redis placed: replayed as it is
        overdraft.spooled(rid)
        if isinstance(entry, SpooledCommit):
            overdraft.commit(rid, entry.charge.whole_nanos + entry.charge.tiered_nanos)
        elif isinstance(entry, SpooledRelease):
            overdraft.release(rid)

    async def reserve(
        self,
        policy: Fallback,
        plan: ReservePlan,
        *,
        attribution: Attribution,
        reservation_id: str,
        idempotency_key: str,
        now_ms: int,
        catalog_version: str,
    ) -> ReserveResponse:
        customer, feature = attribution.customer, attribution.feature
        first = self.overdraft.by_key(customer, idempotency_key)
        if first is not None:
            rid, call = first
            return _allowed(rid, call.held_nanos, catalog_version)
        hold = plan.hold_nanos
        scope = self.overdraft.refusal(policy, customer, feature, hold)
        if scope is None:
            attribution = msgspec.structs.replace(attribution, decided_by="fallback")
            rid = reservation_id
            # Counted before the write, so that concurrent reserves cannot both take the room.
            self.overdraft.add(
                rid, Pending(attribution, idempotency_key, hold, plan.expires_at_ms, counted=True)
            )
            entry = SpooledReserve(
                customer=customer, reservation_id=rid, idempotency_key=idempotency_key,
                now_ms=now_ms, plan=plan, attribution=attribution,
            )  # fmt: skip
            try:
                await self._spool(rid, entry)
            except SpoolFull:
                log.warning("spool full: reserve of %s denied, not decided in fallback", customer)
                scope = "fallback/spool"
            else:
                return _allowed(rid, hold, catalog_version)
        return ReserveResponse(
            allowed=False, reason="store_unavailable", scope=scope,
            catalog_version=catalog_version, decided_by="fallback",
        )  # fmt: skip

    def adopt(self, rid: str, hold: LocalHold) -> Pending:
        """A hold Redis placed, about to be committed or released here."""
        call = self.overdraft.calls.get(rid)
        if call is None:
            call = Pending(hold.attribution, "", hold.held_nanos, hold.expires_at_ms,
                           counted=False)  # fmt: skip
            self.overdraft.add(rid, call)
        return call

    async def commit(
        self, rid: str, call: Pending, charge: Charge, *, catalog_version: str, now_ms: int
    ) -> CommitResponse:
        if call.released:
            return CommitResponse(
                result="already_released", catalog_version=catalog_version,
                decided_by="fallback",
            )  # fmt: skip
        if call.cost_nanos is not None:
            return _committed("already_committed", call, catalog_version)
        entry = SpooledCommit(
            customer=call.attribution.customer, reservation_id=rid, now_ms=now_ms,
            charge=charge, catalog_version=catalog_version,
        )  # fmt: skip
        await self._spool(rid, entry)
        self.overdraft.commit(rid, charge.whole_nanos + charge.tiered_nanos)
        return _committed("committed", call, catalog_version)

    async def release(self, rid: str, call: Pending, *, now_ms: int) -> ReleaseResponse:
        if call.cost_nanos is not None:
            return ReleaseResponse(result="already_committed", decided_by="fallback")
        if call.released:
            return ReleaseResponse(result="already_released", decided_by="fallback")
        customer = call.attribution.customer
        entry = SpooledRelease(customer=customer, reservation_id=rid, now_ms=now_ms)
        await self._spool(rid, entry)
        self.overdraft.release(rid)
        return ReleaseResponse(
            result="released", released=format_credits(call.held_nanos), decided_by="fallback"
        )

    async def unknown(self, entry: SpooledCommit | SpooledRelease) -> None:
        """A commit or release Redis never answered: replayed until it does."""
        try:
            await self._spool(None, entry)
        except SpoolFull:
            log.error(
                "spool full: %s of %s is not replayed; the caller, told outcome_unknown, "
                "must retry it",
                type(entry).__name__, entry.reservation_id,
            )  # fmt: skip

    async def _spool(self, rid: str | None, entry: Entry) -> None:
        """Write ``entry`` durably, counted on its call; SpoolFull when there is no room."""
        if rid is not None:
            self.overdraft.spooled(rid)
        try:
            await self.spool.append(entry)
        except BaseException:
            if rid is not None:
                self.overdraft.done(rid)
            raise
        self._kick()

    def _kick(self) -> None:
        self._wake.set()
        if self._task is None or self._task.done():
            # A context of its own: not the deadline of the request that spooled.
            self._task = asyncio.get_running_loop().create_task(
                self._run(), context=contextvars.Context()
            )

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            try:
                await self.replay()
            except StoreError:
                await asyncio.sleep(RETRY_S)
                continue
            if not len(self.spool):
                self._wake.clear()

    def settled_as(self, rid: str) -> str:
        """The id the store (and then the ledger) holds call ``rid`` under: another when its
        spooled reserve, replayed, found the hold Redis had already placed for its key."""
        return self._aliases.get(rid, rid)

    async def replay(self) -> None:
        """Apply the spool to Redis in order until it is empty; StoreError when Redis stops
        answering (what was applied is removed, the rest waits)."""
        while batch := await self.spool.read(0, BATCH):
            applied: list[tuple[int, str]] = []
            try:
                for entry_id, entry in batch:
                    await self._apply(entry)
                    applied.append((entry_id, entry.reservation_id))
            finally:
                await self.spool.remove([entry_id for entry_id, _ in applied])
                for _, rid in applied:
                    self.overdraft.done(rid)
                self.replayed += len(applied)

    async def _apply(self, entry: Entry) -> None:
        store, rid = self.store, entry.reservation_id
        try:
            if isinstance(entry, SpooledReserve):
                reply = await store.reserve(
                    entry.customer, entry.plan, reservation_id=rid,
                    idempotency_key=entry.idempotency_key, now_ms=entry.now_ms,
                    attribution=entry.attribution, force=True,
                )  # fmt: skip
                if reply.reservation_id != rid:  # the key had a hold in Redis already
                    await self.spool.alias(rid, reply.reservation_id, entry.now_ms)
                    self._aliases[rid] = reply.reservation_id
                    log.warning("spooled reserve %s replayed as %s", rid, reply.reservation_id)
                return
            target = self._aliases.get(rid, rid)
            if isinstance(entry, SpooledCommit):
                committed = await store.commit(
                    entry.customer, target, charge=entry.charge,
                    catalog_version=entry.catalog_version, now_ms=entry.now_ms,
                )  # fmt: skip
                result: str = committed.result
            else:
                result = (await store.release(entry.customer, target, entry.now_ms)).result
        except StoreError:
            raise
        except Exception:  # a bug: logged whole, so that it can be applied by hand
            self.failed += 1
            log.exception("replaying a spooled call failed: %s", msgspec.json.encode(entry))
            return
        if result == "not_found":
            self.failed += 1
            log.error("spooled call found no hold in Redis: %s", msgspec.json.encode(entry))

    def metrics(self) -> Iterator[Metric]:
        spool = self.spool
        yield gauge("creditgate_spool_entries", "Calls in the spool, not yet applied by Redis.",
                    len(spool))  # fmt: skip
        yield gauge("creditgate_spool_bytes", "Bytes of the calls in the spool.", spool.bytes)
        yield counter(
            "creditgate_spool_full",
            "Calls not decided in fallback (or not spooled) because the spool was full.",
            spool.full,
        )
        yield counter("creditgate_spool_replayed", "Spooled calls applied by Redis.",
                      self.replayed)  # fmt: skip
        yield counter(
            "creditgate_spool_replay_failures",
            "Spooled calls Redis could not apply (logged whole): should stay 0.",
            self.failed,
        )
        yield gauge(
            "creditgate_fallback_calls",
            "Calls answered in fallback whose spool entries Redis has not applied yet.",
            len(self.overdraft),
        )

    async def close(self) -> None:
        """Stop replaying after one last try; what is left stays in the spool for the next
        start; a second call does nothing."""
        if self.spool.closed:
            return
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(StoreError):
            await self.replay()
        if len(self.spool):
            log.warning("stopping with %d calls in the spool", len(self.spool))
        await self.spool.close()


def _allowed(rid: str, held: int, catalog_version: str) -> ReserveResponse:
    return ReserveResponse(
        allowed=True, reason="ok", reservation_id=rid, held=format_credits(held),
        catalog_version=catalog_version, decided_by="fallback",
    )  # fmt: skip


def _committed(
    result: Literal["committed", "already_committed"], call: Pending, catalog_version: str
) -> CommitResponse:
    """What a commit answered in fallback can say: how the cost compares with the hold. Which
    credits pay, and how much no credit covers, Redis decides at replay (the ledger has it)."""
    cost = call.cost_nanos or 0
    return CommitResponse(
        result=result,
        cost=format_credits(cost),
        overrun=format_credits(max(0, cost - call.held_nanos)),
        overage=format_credits(max(0, cost - call.held_nanos)),
        released=format_credits(max(0, call.held_nanos - cost)),
        catalog_version=catalog_version,
        decided_by="fallback",
    )
