"""What a proposed catalog would have done to real usage: the ledger's consumption events of a
window replayed under it, read-only and deterministic (the same events and catalog give the
same report).

Each call is priced twice. **Before** is what the ledger recorded (``cost_nanos``, its cost of
serve); **after** is the call priced under the proposal exactly as a commit prices it: the
customer's plan and contract in force at the call (``customer_changes``), contract prices and
discount, graduated tiers counted on from the customer's month, and the per-customer carry of
sub-nano remainders starting from the carry the ledger recorded before the window. A call
the caller priced itself (an ``amount``) keeps its charge under any catalog; such a call is
recognised as the one whose recorded charge its own catalog's prices do not reproduce.

Under the proposal's plans a call is **denied** when its customer's plan is gone
(``plan_removed``), its feature is unknown or not in the plan (``unknown_feature``,
``feature_not_entitled``), its model is not in the plan (``model_not_allowed``), a unit it used
has no price (``unpriced_units``), or the feature's limit for the period of the call would be
passed (``quota_exceeded``, counted on actual units, in the order the calls ran, from the start
of the period). A denied call is not charged after, and its units do not count on.

Calls of the window's month before the window (all of history when a limit counts over the
customer's lifetime) are read too: they ran, and count toward tiers and limits as they were.
Budgets set through the admin API, rate limits, holds and stream cut-offs are not replayed.
"""

from __future__ import annotations

import bisect
import contextlib
import functools
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from typing import Any

import msgspec

from sidecar.catalog.model import Catalog, Period, Tiers
from sidecar.engine.customer import (
    CustomerSnapshot,
    limit_of,
    outcome_price_of,
    prices_of,
    tiers_of,
)
from sidecar.engine.periods import period_start_ms
from sidecar.engine.pricing import carry
from sidecar.engine.settle import serve_femtos
from sidecar.engine.tiers import graduated_femtos
from sidecar.errors import InvalidInput
from sidecar.ledger.db import Connection, load_catalogs
from sidecar.ledger.state import CustomerFact, overrides_of
from sidecar.money import FEMTOS_PER_NANO, format_femtos
from sidecar.times import format_time, ms_of, time_of

__all__ = [
    "DENIED_LISTED_MAX",
    "Call",
    "Denied",
    "Replay",
    "SimulationReport",
    "Totals",
    "simulate",
    "summary",
]

DENIED_LISTED_MAX = 1000
"""Denied calls listed one by one in a report (all are counted)."""
FETCH_ROWS = 10_000


class Call(msgspec.Struct, frozen=True, kw_only=True):
    """One committed call as the ledger stored it."""

    event_id: str
    customer: str
    feature: str
    model: str | None
    units: dict[str, int]
    cost_nanos: int
    serve_femtos: int
    carry_femtos: int | None
    catalog_version: str
    reserved_ms: int
    ts_ms: int


class Denied(msgspec.Struct, frozen=True, kw_only=True):
    event_id: str
    customer: str
    feature: str
    model: str | None
    reason: str
    at: str


class Totals(msgspec.Struct, frozen=True, kw_only=True):
    events: int
    denied: int
    revenue_before: str
    revenue_after: str
    serve_cost_before: str
    serve_cost_after: str
    margin_before: str
    margin_after: str


class SimulationReport(msgspec.Struct, frozen=True, kw_only=True):
    start: str = msgspec.field(name="from")
    end: str = msgspec.field(name="to")
    catalog_version: str
    """The proposal's."""
    priced_by: list[str]
    """The catalog versions that priced the window's calls."""
    totals: Totals
    plans: dict[str, Totals]
    """By the plan each call's customer was on."""
    customers: dict[str, Totals]
    models: dict[str, Totals]
    """Revenue here is exact (femto-credits, before the carry rounds it per customer)."""
    denied: list[Denied]
    """The first DENIED_LISTED_MAX, in the order the calls ran."""


class _Sums:
    __slots__ = ("denied", "events", "revenue_after", "revenue_before", "serve_after",
                 "serve_before")  # fmt: skip

    def __init__(self) -> None:
        self.events = self.denied = 0
        self.revenue_before = self.revenue_after = 0
        """Femto-credits."""
        self.serve_before = self.serve_after = 0

    def add(
        self, before: int, after: int, serve_before: int, serve_after: int, denied: bool
    ) -> None:
        self.events += 1
        self.denied += denied
        self.revenue_before += before
        self.revenue_after += after
        self.serve_before += serve_before
        self.serve_after += serve_after

    def totals(self) -> Totals:
        return Totals(
            events=self.events,
            denied=self.denied,
            revenue_before=format_femtos(self.revenue_before),
            revenue_after=format_femtos(self.revenue_after),
            serve_cost_before=format_femtos(self.serve_before),
            serve_cost_after=format_femtos(self.serve_after),
            margin_before=format_femtos(self.revenue_before - self.serve_before),
            margin_after=format_femtos(self.revenue_after - self.serve_after),
        )


class _Unpriced(Exception):
    """A unit of the call has no price under the catalog."""


DAY_MS = 86_400_000


@functools.lru_cache(maxsize=4096)
def _month_of_day(day: int) -> int:
    moment = datetime.fromtimestamp(day * 86_400, UTC)
    return moment.year * 12 + moment.month - 1


def _month(ms: int) -> int:
    return _month_of_day(ms // DAY_MS)


def _period(period: Period, ms: int) -> int:
    """The period of ``ms`` as a number: its day, its month, or 0 (lifetime); UTC."""
    if period == "day":
        return ms // DAY_MS
    return _month(ms) if period == "month" else 0


class Replay:
    """The pure core: feed it the calls in the order they ran (``history`` first, then the
    window's), then read ``report()``."""

    def __init__(
        self,
        proposal: Catalog,
        catalogs: dict[str, Catalog],
        changes: dict[str, list[CustomerFact]],
    ) -> None:
        self._new = proposal
        self._catalogs = catalogs
        self._changes = changes
        self._change_ts = {c: [f.ts_ms for f in facts] for c, facts in changes.items()}
        self._snapshots: dict[tuple[int, str, int], CustomerSnapshot] = {}
        self._prices: dict[tuple[int, int, str | None], tuple[dict[str, int], dict[str, Tiers]]]
        self._prices = {}
        self._tiered: dict[tuple[str, int, str, str], int] = {}
        """(customer, month, model, kind) -> units so far, under the proposal."""
        self._was_tiered: dict[tuple[str, int, str, str], int] = {}
        """The same under the catalogs that priced the calls."""
        self._used: dict[tuple[str, str, int], int] = {}
        """(customer, feature, period id) -> units counted toward the proposal's limit."""
        self._carry_after: dict[str, int] = {}
        self._carry_before: dict[str, int] = {}
        self._sums: dict[str, dict[str, _Sums]] = {"plans": {}, "customers": {}, "models": {}}
        self._total = _Sums()
        self._denied: list[Denied] = []
        self._priced_by: set[str] = set()

    def _fact(self, call: Call) -> CustomerFact | None:
        facts = self._changes.get(call.customer)
        if not facts:
            return None
        index = bisect.bisect_right(self._change_ts[call.customer], call.ts_ms) - 1
        return facts[max(index, 0)]

    def _snapshot(
        self, catalog: Catalog, call: Call, fact: CustomerFact | None
    ) -> CustomerSnapshot:
        key = (id(catalog), call.customer, fact.ts_ms if fact else -1)
        snapshot = self._snapshots.get(key)
        if snapshot is None:
            snapshot = CustomerSnapshot(
                id=call.customer,
                plan=fact.plan if fact else "",
                overrides=overrides_of(fact.overrides, catalog) if fact else None,
            )
            self._snapshots[key] = snapshot
        return snapshot

    def _tables(
        self, catalog: Catalog, snapshot: CustomerSnapshot, model: str | None
    ) -> tuple[dict[str, int], dict[str, Tiers]]:
        """The customer's flat prices (model kinds and outcomes) and graduated tiers of
        ``model`` under ``catalog``, computed once per customer state."""
        key = (id(catalog), id(snapshot), model)
        tables = self._prices.get(key)
        if tables is None:
            flat: dict[str, int] = {}
            for outcome in catalog.outcome_prices_femtos:
                price = outcome_price_of(catalog, snapshot, outcome)
                if price is not None:
                    flat[outcome] = price
            tiers: dict[str, Tiers] = {}
            if model is not None and model in catalog.prices_femtos:
                tiers = tiers_of(catalog, snapshot, model)
                flat.update(
                    (k, v) for k, v in prices_of(catalog, snapshot, model).items() if k not in tiers
                )
            tables = self._prices[key] = (flat, tiers)
        return tables

    def _femtos(
        self,
        catalog: Catalog,
        snapshot: CustomerSnapshot,
        call: Call,
        counters: dict[tuple[str, int, str, str], int],
    ) -> int:
        """The exact price of the call's units as commit.lua prices them (tiers counted on
        from the customer's month), advancing the tier counters; _Unpriced when a unit has no
        price."""
        flat, tiers = self._tables(catalog, snapshot, call.model)
        total = 0
        for kind, count in call.units.items():
            table = tiers.get(kind)
            if table is None:
                price = flat.get(kind)
                if price is None:
                    raise _Unpriced(kind)
                total += price * count
            else:
                key = (call.customer, _month(call.ts_ms), call.model or "", kind)
                at = counters.get(key, 0)
                total += graduated_femtos(table, at, count)
                counters[key] = at + count
        return total

    def _denial(self, snapshot: CustomerSnapshot, call: Call) -> str | None:
        plan = self._new.plans.get(snapshot.plan)
        if plan is None:
            return "plan_removed"
        feature = self._new.features.get(call.feature)
        if feature is None:
            return "unknown_feature"
        entry = plan.features.get(call.feature)
        if entry is None:
            return "feature_not_entitled"
        if call.model is not None and call.model not in plan.models:
            return "model_not_allowed"
        limit = limit_of(self._new, snapshot, call.feature)
        if limit is not None and feature.type == "metered":
            counted = sum(call.units.get(kind, 0) for kind in feature.counts)
            key = (call.customer, call.feature, _period(entry.period, call.reserved_ms))
            if self._used.get(key, 0) + counted > limit:
                return "quota_exceeded"
        return None

    def _count(self, snapshot: CustomerSnapshot, call: Call) -> None:
        plan = self._new.plans.get(snapshot.plan)
        feature = self._new.features.get(call.feature)
        if plan is None or feature is None or call.feature not in plan.features:
            return
        period = plan.features[call.feature].period
        key = (call.customer, call.feature, _period(period, call.reserved_ms))
        counted = sum(call.units.get(kind, 0) for kind in feature.counts)
        self._used[key] = self._used.get(key, 0) + counted

    def _before_femtos(self, call: Call, fact: CustomerFact | None) -> int | None:
        """The call's exact price under the catalog that priced it, when that catalog
        reproduces the recorded charge from the carry before it; None when the caller priced
        the call itself (or its catalog is unknown)."""
        catalog = self._catalogs.get(call.catalog_version)
        femtos = None
        if catalog is not None:
            try:
                femtos = self._femtos(
                    catalog, self._snapshot(catalog, call, fact), call, self._was_tiered
                )
            except (_Unpriced, KeyError):
                femtos = None
        if femtos is not None:
            charged, _ = carry(self._carry_before.get(call.customer, 0), femtos)
            if charged != call.cost_nanos:
                femtos = None
        if call.carry_femtos is not None:
            self._carry_before[call.customer] = call.carry_femtos
        return femtos

    def history(self, call: Call) -> None:
        """A call before the window: it counts toward tiers and limits as it ran, and leaves
        the carry the ledger recorded."""
        fact = self._fact(call)
        self._before_femtos(call, fact)
        snapshot = self._snapshot(self._new, call, fact)
        with contextlib.suppress(_Unpriced, KeyError):  # unpriced now: it ran all the same
            self._femtos(self._new, snapshot, call, self._tiered)
        self._count(snapshot, call)
        if call.carry_femtos is not None:
            self._carry_after[call.customer] = call.carry_femtos

    def window(self, call: Call) -> None:
        """A call of the window: priced and checked under the proposal."""
        self._priced_by.add(call.catalog_version)
        fact = self._fact(call)
        before_exact = self._before_femtos(call, fact)
        snapshot = self._snapshot(self._new, call, fact)
        reason = self._denial(snapshot, call)
        after_exact = 0
        if reason is None:
            if before_exact is None:  # the caller's own price stands under any catalog
                after_exact = call.cost_nanos * FEMTOS_PER_NANO
            else:
                try:
                    after_exact = self._femtos(self._new, snapshot, call, self._tiered)
                except (_Unpriced, KeyError):
                    reason = "unpriced_units"
        if reason is not None:
            after_nanos, serve_after = 0, 0
            if len(self._denied) < DENIED_LISTED_MAX:
                self._denied.append(
                    Denied(
                        event_id=call.event_id, customer=call.customer, feature=call.feature,
                        model=call.model, reason=reason, at=format_time(call.ts_ms),
                    )
                )  # fmt: skip
        else:
            self._count(snapshot, call)
            after_nanos, rest = carry(self._carry_after.get(call.customer, 0), after_exact)
            self._carry_after[call.customer] = rest
            serve_after = serve_femtos(self._new, call.model, call.units)
        before = call.cost_nanos * FEMTOS_PER_NANO
        denied = reason is not None
        after = after_nanos * FEMTOS_PER_NANO
        self._total.add(before, after, call.serve_femtos, serve_after, denied)
        plan = fact.plan if fact else ""
        self._group("plans", plan).add(before, after, call.serve_femtos, serve_after, denied)
        self._group("customers", call.customer).add(
            before, after, call.serve_femtos, serve_after, denied
        )
        exact_before = before if before_exact is None else before_exact
        self._group("models", call.model or "(outcomes)").add(
            exact_before, after_exact if not denied else 0, call.serve_femtos, serve_after, denied
        )

    def _group(self, kind: str, key: str) -> _Sums:
        groups = self._sums[kind]
        if key not in groups:
            groups[key] = _Sums()
        return groups[key]

    def report(self, start_ms: int, end_ms: int) -> SimulationReport:
        def listed(kind: str) -> dict[str, Totals]:
            return {key: sums.totals() for key, sums in sorted(self._sums[kind].items())}

        return SimulationReport(
            start=format_time(start_ms),
            end=format_time(end_ms),
            catalog_version=self._new.version,
            priced_by=sorted(self._priced_by),
            totals=self._total.totals(),
            plans=listed("plans"),
            customers=listed("customers"),
            models=listed("models"),
            denied=self._denied,
        )


_CALLS = """
SELECT event_id, customer, feature, model, units::text AS units, cost_nanos, serve_femtos,
       carry_femtos, catalog_version, reserved_at, ts
FROM usage_events WHERE ts >= $1 AND ts < $2
ORDER BY ts, stream_ms, stream_seq
"""
_CHANGES = (
    "SELECT customer, plan, overrides, ts FROM customer_changes ORDER BY ts, stream_ms, stream_seq"
)
_units = msgspec.json.Decoder(dict[str, int])


async def _calls(connection: Connection, start_ms: int, end_ms: int) -> AsyncIterator[Call]:
    cursor = connection.cursor(_CALLS, time_of(start_ms), time_of(end_ms), prefetch=FETCH_ROWS)
    async for r in cursor:
        yield Call(
            event_id=r["event_id"], customer=r["customer"], feature=r["feature"],
            model=r["model"], units=_units.decode(r["units"]), cost_nanos=r["cost_nanos"],
            serve_femtos=int(r["serve_femtos"]), carry_femtos=r["carry_femtos"],
            catalog_version=r["catalog_version"], reserved_ms=ms_of(r["reserved_at"]),
            ts_ms=ms_of(r["ts"]),
        )  # fmt: skip


def _counts_lifetime(catalog: Catalog) -> bool:
    return any(
        entry.period == "lifetime" and entry.limit is not None
        for plan in catalog.plans.values()
        for entry in plan.features.values()
    )


async def simulate(
    connection: Connection, proposal: Catalog, start_ms: int, end_ms: int
) -> SimulationReport:
    """Replay the calls committed in ``[start_ms, end_ms)`` under ``proposal``; read-only,
    in one repeatable-read snapshot."""
    if end_ms <= start_ms:
        raise InvalidInput("to", "must be after from")
    async with connection.transaction(isolation="repeatable_read", readonly=True):
        catalogs = await load_catalogs(connection)
        changes: dict[str, list[CustomerFact]] = {}
        for r in await connection.fetch(_CHANGES):
            changes.setdefault(r["customer"], []).append(
                CustomerFact(plan=r["plan"], overrides=r["overrides"], ts_ms=ms_of(r["ts"]))
            )
        replay = Replay(proposal, catalogs, changes)
        warm_from = 0 if _counts_lifetime(proposal) else period_start_ms("month", start_ms)
        async for call in _calls(connection, warm_from, start_ms):
            replay.history(call)
        async for call in _calls(connection, start_ms, end_ms):
            replay.window(call)
    return replay.report(start_ms, end_ms)


def summary(report: SimulationReport, *, groups: Iterable[str] = ("plans", "models")) -> str:
    """The report as a few lines of text: totals, then each plan and model."""

    def line(name: str, t: Totals) -> str:
        return (
            f"{name}: {t.events} calls, {t.denied} denied; revenue {t.revenue_before} -> "
            f"{t.revenue_after}; cost of serve {t.serve_cost_before} -> {t.serve_cost_after}; "
            f"margin {t.margin_before} -> {t.margin_after}"
        )

    out = [f"simulation of catalog {report.catalog_version}, {report.start} to {report.end}"]
    out.append(line("total", report.totals))
    data: dict[str, Any] = {"plans": report.plans, "models": report.models}
    for group in groups:
        for name, totals in data[group].items():
            out.append(line(f"{group[:-1]} {name}", totals))
    for denied in report.denied:
        out.append(
            f"denied {denied.event_id} ({denied.customer}, {denied.feature}, "
            f"{denied.model or '-'}) at {denied.at}: {denied.reason}"
        )
    if report.totals.denied > len(report.denied):
        out.append(f"... and {report.totals.denied - len(report.denied)} more denied")
    return "\n".join(out)
