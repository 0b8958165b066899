"""The Redis state of one customer as the ledger says it must be. Pure: facts in, keys out.

Both ``rebuild`` (write it) and ``reconcile`` (compare with Redis) use this one function, so
they cannot disagree. What it holds is money and what decides about money: the customer's
plan, every unspent bucket (remaining amount under its burn key), budgets, the customer's own
alert rules, the period counters of use (of every node, quota and session, and the month's
uncovered cost), the carried sub-nano remainder, and the grants' idempotency keys; names are
store/layout.py's.
Holds in flight are not money and are not part of it; neither are rate-limit windows.

Counters are named by the period in force when the hold was placed (the reservation id's
time), exactly as ``reserve.lua`` names them, and live as long as the layout says.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from sidecar.catalog.compile import compile_overrides
from sidecar.catalog.model import Catalog, Contract
from sidecar.catalog.spec import ContractSpec
from sidecar.engine.alerts import compile_thresholds
from sidecar.engine.burn import burn_key
from sidecar.engine.customer import CustomerSnapshot, limit_of, tiers_of
from sidecar.engine.periods import period_ids
from sidecar.errors import CreditgateError
from sidecar.store import layout

__all__ = [
    "AlertRuleFact",
    "BudgetFact",
    "CustomerFact",
    "GrantFact",
    "LedgerFacts",
    "MoneyRow",
    "QuotaRow",
    "RedisState",
    "SessionRow",
    "TierRow",
    "expected_state",
    "overrides_of",
]


class CustomerFact(msgspec.Struct, frozen=True, kw_only=True):
    plan: str
    overrides: str
    ts_ms: int


class GrantFact(msgspec.Struct, frozen=True, kw_only=True):
    grant_id: str
    credit_type: str
    amount_nanos: int
    priority: int
    expires_at_ms: int | None
    granted_ms: int
    reason: str
    idempotency_key: str | None
    moved_nanos: int
    """Sum of the grant's other entries (debits, expiry, corrections): <= 0 unless refunded."""

    @property
    def remaining_nanos(self) -> int:
        return self.amount_nanos + self.moved_nanos


class BudgetFact(msgspec.Struct, frozen=True, kw_only=True):
    scope: str
    period: str
    limit_nanos: int
    mode: str


class MoneyRow(msgspec.Struct, frozen=True, kw_only=True):
    period: str
    """``life``, ``m202611`` or ``d20261119``: the counter id in force at reserve time."""
    scope: str
    cost_nanos: int
    uncovered_nanos: int
    last_reserved_ms: int


class SessionRow(msgspec.Struct, frozen=True, kw_only=True):
    session: str
    cost_nanos: int
    last_reserved_ms: int


class QuotaRow(msgspec.Struct, frozen=True, kw_only=True):
    feature: str
    catalog_version: str
    segment: int
    """Index into ``LedgerFacts.changes``: the plan and overrides in force at reserve time."""
    day: str | None
    month: str | None
    kind: str
    quantity: int
    last_reserved_ms: int


class TierRow(msgspec.Struct, frozen=True, kw_only=True):
    """Units of a model's kind in a month, by the catalog and contract that priced them."""

    month: str
    model: str
    kind: str
    catalog_version: str
    segment: int
    quantity: int
    last_reserved_ms: int


class AlertRuleFact(msgspec.Struct, frozen=True, kw_only=True):
    """The customer's own alert rule on one budget or on the balance, as last set (the audit
    trail's ``alerts.set``, written in the same script as the rule); no thresholds: removed."""

    scope: str
    period: str | None
    thresholds: tuple[str, ...]


class LedgerFacts(msgspec.Struct, frozen=True, kw_only=True):
    customer: str
    changes: tuple[CustomerFact, ...]
    """Every plan change, oldest first."""
    grants: tuple[GrantFact, ...]
    budgets: tuple[BudgetFact, ...]
    """The latest value of each budget."""
    money: tuple[MoneyRow, ...]
    sessions: tuple[SessionRow, ...]
    quotas: tuple[QuotaRow, ...]
    carry_femtos: int | None
    tiers: tuple[TierRow, ...] = ()
    alert_rules: tuple[AlertRuleFact, ...] = ()


class RedisState(msgspec.Struct, kw_only=True):
    """Key names are relative to the customer's prefix ``cg:{c:<customer>}:``."""

    customer: str
    hashes: dict[str, dict[str, str]]
    buckets: list[str]
    """Members of the ``buckets`` sorted set (all with score 0): the burn order."""
    ttl_ms: dict[str, int]
    idempotency_keys: list[str]
    """Grant idempotency keys, each stored as ``layout.GRANTED``."""


def overrides_of(text: str, catalog: Catalog) -> Contract | None:
    """The contract overrides recorded with a plan change ('' for none), under ``catalog``."""
    if not text:
        return None
    try:
        return compile_overrides(msgspec.json.decode(text, type=ContractSpec), catalog)
    except (CreditgateError, msgspec.DecodeError, msgspec.ValidationError):
        return None  # the sidecar ignores overrides that no longer fit its catalog, too


def _quota_period(
    row: QuotaRow, facts: LedgerFacts, catalogs: Mapping[str, Catalog], fallback: Catalog
) -> str | None:
    """The counter id a quota row counts in, or None when the call had no quota for it."""
    if not facts.changes:
        return None
    catalog, snapshot = _in_force(facts, catalogs, fallback, row.catalog_version, row.segment)
    feature = catalog.features.get(row.feature)
    plan = catalog.plans.get(snapshot.plan)
    if feature is None or feature.type != "metered" or row.kind not in feature.counts:
        return None
    if plan is None or row.feature not in plan.features:
        return None
    if limit_of(catalog, snapshot, row.feature) is None:
        return None
    period = plan.features[row.feature].period
    return {"day": row.day, "month": row.month, "lifetime": "life"}[period]


def _tiered(
    row: TierRow, facts: LedgerFacts, catalogs: Mapping[str, Catalog], fallback: Catalog
) -> bool:
    """Whether the row's units were priced by graduated tiers, which count them (the commit
    script's counter, engine/tiers.py)."""
    if not facts.changes:
        return False
    catalog, snapshot = _in_force(facts, catalogs, fallback, row.catalog_version, row.segment)
    return row.kind in tiers_of(catalog, snapshot, row.model)


def _in_force(
    facts: LedgerFacts,
    catalogs: Mapping[str, Catalog],
    fallback: Catalog,
    version: str,
    segment: int,
) -> tuple[Catalog, CustomerSnapshot]:
    """The catalog that priced a call and the customer as it was (``segment``: its plan
    change); ``facts.changes`` is not empty."""
    catalog = catalogs.get(version, fallback)
    change = facts.changes[min(segment, len(facts.changes) - 1)]
    return catalog, CustomerSnapshot(
        id=facts.customer, plan=change.plan, overrides=overrides_of(change.overrides, catalog)
    )  # fmt: skip


def _ttl(name: str, last_reserved_ms: int, now_ms: int) -> int | None:
    """ms left to live for a counter key (None: no expiry); <= 0 means already gone."""
    lifetime = layout.counter_ttl_ms(name)
    return None if lifetime is None else last_reserved_ms + lifetime - now_ms


def _alert_field(rule: AlertRuleFact) -> str:
    if rule.scope == layout.ALERT_BALANCE or rule.period is None:
        return layout.ALERT_BALANCE
    return layout.budget_field(rule.scope, rule.period)


def expected_state(
    facts: LedgerFacts, catalogs: Mapping[str, Catalog], fallback: Catalog, now_ms: int
) -> RedisState:
    """The customer's Redis money state at ``now_ms`` according to the ledger.

    ``catalogs`` are the recorded catalogs by version (quota counters depend on the plan's
    metered features); events priced by a version the ledger never recorded use ``fallback``.
    """
    hashes: dict[str, dict[str, str]] = {}
    ttl: dict[str, int] = {}
    last: dict[str, int] = {}

    def add(key: str, field: str, amount: int, last_reserved_ms: int) -> None:
        if amount:
            fields = hashes.setdefault(key, {})
            fields[field] = str(int(fields.get(field, "0")) + amount)
            last[key] = max(last.get(key, 0), last_reserved_ms)

    if facts.changes:
        latest = facts.changes[-1]
        hashes[layout.CUSTOMER] = {
            layout.PLAN: latest.plan,
            layout.OVERRIDES: latest.overrides,
            layout.UPDATED_MS: str(latest.ts_ms),
        }
        # The month whose plan grants were issued. A plan without grants has nothing to issue:
        # the sidecar marks the month on its first look at the customer, so mark it now.
        plan_grants = [g.granted_ms for g in facts.grants if g.reason == "plan"]
        plan = fallback.plans.get(latest.plan)
        if plan_grants:
            hashes[layout.CUSTOMER][layout.GRANTED_MONTH] = period_ids(max(plan_grants)).month
        elif plan is not None and not plan.grants:
            hashes[layout.CUSTOMER][layout.GRANTED_MONTH] = period_ids(now_ms).month
    buckets = {
        burn_key(g.priority, g.expires_at_ms, g.granted_ms, g.grant_id, g.credit_type): g
        for g in facts.grants
        if g.remaining_nanos > 0
    }
    if buckets:
        hashes[layout.BUCKET] = {key: str(g.remaining_nanos) for key, g in buckets.items()}
    if facts.budgets:
        hashes[layout.BUDGETS] = {
            layout.budget_field(b.scope, b.period): layout.budget_value(b.limit_nanos, b.mode)
            for b in facts.budgets
        }
    if facts.carry_femtos is not None:
        hashes[layout.BALANCE] = {layout.CARRY: str(facts.carry_femtos)}
    rules = {
        _alert_field(rule): compile_thresholds(
            "thresholds", rule.thresholds, balance=rule.scope == layout.ALERT_BALANCE
        )
        for rule in facts.alert_rules
        if rule.thresholds
    }
    if rules:
        hashes[layout.ALERTS] = rules
    for row in facts.money:
        key = layout.usage_key(row.period)
        add(key, layout.counter_fields(row.scope)[0], row.cost_nanos, row.last_reserved_ms)
        if row.scope == "customer" and row.period.startswith("m"):
            add(key, layout.UNCOVERED, row.uncovered_nanos, row.last_reserved_ms)
    for quota in facts.quotas:
        period = _quota_period(quota, facts, catalogs, fallback)
        if period is not None:
            used = layout.counter_fields(layout.quota_field(quota.feature))[0]
            add(layout.usage_key(period), used, quota.quantity, quota.last_reserved_ms)
    for tier in facts.tiers:
        if _tiered(tier, facts, catalogs, fallback):
            field = layout.tier_field(tier.model, tier.kind)
            add(layout.usage_key(tier.month), field, tier.quantity, tier.last_reserved_ms)
    for period_key, stamp in last.items():
        left = _ttl(period_key, stamp, now_ms)
        if left is None:
            continue
        if left <= 0:
            del hashes[period_key]
        else:
            ttl[period_key] = left
    for session in facts.sessions:
        name = layout.session_key(session.session)
        left = _ttl(name, session.last_reserved_ms, now_ms)
        if session.cost_nanos and left is not None and left > 0:
            hashes[name] = {layout.USED: str(session.cost_nanos)}
            ttl[name] = left
    return RedisState(
        customer=facts.customer,
        hashes=hashes,
        buckets=sorted(buckets),
        ttl_ms=ttl,
        idempotency_keys=sorted(g.idempotency_key for g in facts.grants if g.idempotency_key),
    )
