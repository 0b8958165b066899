"""What a new catalog changes, semantically: compiled catalogs compared fact by fact, so
that ``"2.5"`` and ``"2.50"`` are the same price and a reordered file changes nothing. Pure.

Each fact has a path that mirrors the catalog file (``models.gpt-4o.prices_per_million.
input_tokens``, ``plans.pro.features.chat.limit``) and a value written as the file would
write it (credits, per million for model prices). A model, plan, feature, credit type,
outcome or contract that only one side has is one change (``added``/``removed``); the rest are
field by field, old -> new.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import msgspec

from sidecar.catalog.model import Catalog, Contract, Plan, Tiers
from sidecar.money import format_credits, format_femtos

__all__ = ["Change", "diff", "facts"]

SECTIONS = ("credit_types", "models", "outcomes", "features", "plans", "contracts")


class Change(msgspec.Struct, frozen=True, kw_only=True):
    path: str
    change: Literal["added", "removed", "changed"]
    old: str | None = None
    new: str | None = None

    def line(self) -> str:
        if self.change == "changed":
            return f"~ {self.path}: {self.old} -> {self.new}"
        return f"{'+' if self.change == 'added' else '-'} {self.path}"


def _per_million(femtos: int) -> str:
    """Femto-credits per unit as credits per million units (what the file writes)."""
    return format_credits(femtos)


def _tiers(tiers: Tiers) -> str:
    return ", ".join(
        f"{'up to ' + str(end) if end is not None else 'beyond'} at {_per_million(price)}"
        for end, price in tiers
    )


def _prices(prefix: str, table: dict[str, int]) -> Iterator[tuple[str, str]]:
    for kind, femtos in table.items():
        yield f"{prefix}.{kind}", _per_million(femtos)


def _plan(plan: Plan) -> Iterator[tuple[str, str]]:
    for feature, entry in plan.features.items():
        where = f"features.{feature}"
        yield f"{where}.limit", "unlimited" if entry.limit is None else str(entry.limit)
        yield f"{where}.period", entry.period
        if entry.value is not None:
            yield f"{where}.value", str(entry.value)
    yield "models", ", ".join(sorted(plan.models))
    yield "grants", "; ".join(
        f"{format_credits(g.amount_nanos)} {g.credit_type}"
        + (f" (rollover up to {format_credits(g.rollover_cap_nanos)})"
           if g.rollover_cap_nanos is not None else "")
        for g in plan.grants
    ) or "none"  # fmt: skip
    yield (
        "rate_limits",
        "; ".join(
            f"{r.scope}: {r.requests_per_minute} requests, {r.tokens_per_minute} tokens per minute"
            for r in plan.rate_limits
        )
        or "none",
    )
    yield "fee", format_credits(plan.fee_nanos)
    yield "on_credits_exhausted.cap", format_credits(plan.overage_cap_nanos)
    if plan.session_budget_nanos is not None:
        yield "session_budget", format_credits(plan.session_budget_nanos)
    yield "alerts.budgets", plan.alert_budgets or "none"
    yield "alerts.balance", plan.alert_balance or "none"


def _contract(contract: Contract) -> Iterator[tuple[str, str]]:
    for model, table in contract.prices_femtos.items():
        yield from _prices(f"prices_per_million.{model}", table)
    for outcome, femtos in contract.outcome_prices_femtos.items():
        yield f"outcomes.{outcome}", format_femtos(femtos)
    for model, kinds in contract.tiers_femtos.items():
        for kind, tiers in kinds.items():
            yield f"tiers.{model}.{kind}", _tiers(tiers)
    for feature, limit in contract.limits.items():
        yield f"limits.{feature}", str(limit)
    if contract.discount_percent is not None:
        yield "discount_percent", str(contract.discount_percent)
    if contract.minimum_nanos is not None:
        yield "minimum", format_credits(contract.minimum_nanos)


def facts(catalog: Catalog) -> dict[str, dict[str, str]]:
    """Each entity of each section (``models.gpt-4o``) -> its facts by path inside it."""
    out: dict[str, dict[str, str]] = {}
    for type_id, credit_type in catalog.credit_types.items():
        models = "any" if credit_type.models is None else ", ".join(sorted(credit_type.models))
        out[f"credit_types.{type_id}"] = {"priority": str(credit_type.priority), "models": models}
    for model in catalog.prices_femtos.keys() | catalog.tiers_femtos.keys():
        tiered = catalog.tiers_femtos.get(model, {})
        flat = {k: v for k, v in catalog.prices_femtos.get(model, {}).items() if k not in tiered}
        entry = dict(_prices("prices_per_million", flat))
        entry.update(_prices("costs_per_million", catalog.costs_femtos.get(model, {})))
        entry.update({f"tiers.{k}": _tiers(t) for k, t in tiered.items()})
        for kind, steps in catalog.volume_femtos.get(model, {}).items():
            entry[f"volume.{kind}"] = ", ".join(
                f"from {units} at {_per_million(price)}" for units, price in steps
            )
        if model in catalog.max_output_tokens:
            entry["max_output_tokens"] = str(catalog.max_output_tokens[model])
        out[f"models.{model}"] = entry
    for outcome, femtos in catalog.outcome_prices_femtos.items():
        out[f"outcomes.{outcome}"] = {"price": format_femtos(femtos)}
    for feature_id, feature in catalog.features.items():
        entry = {"type": feature.type, "counts": ", ".join(feature.counts) or "none"}
        entry["on_store_unavailable"] = "allow" if feature.fallback else "deny"
        if feature.fallback is not None:
            entry["overdraft"] = format_credits(feature.fallback.overdraft_nanos)
        out[f"features.{feature_id}"] = entry
    for plan_id, plan in catalog.plans.items():
        out[f"plans.{plan_id}"] = dict(_plan(plan))
    for customer, contract in catalog.contracts.items():
        out[f"contracts.{customer}"] = dict(_contract(contract))
    return out


def _order(path: str) -> tuple[int, str]:
    return SECTIONS.index(path.split(".", 1)[0]), path


def diff(old: Catalog, new: Catalog) -> list[Change]:
    """Every change from ``old`` to ``new``, by section in file order, then by path."""
    before, after = facts(old), facts(new)
    changes: list[Change] = []
    for entity in sorted(before.keys() | after.keys(), key=_order):
        if entity not in after:
            changes.append(Change(path=entity, change="removed"))
        elif entity not in before:
            changes.append(Change(path=entity, change="added"))
        else:
            was, now = before[entity], after[entity]
            for field in sorted(was.keys() | now.keys()):
                if was.get(field) != now.get(field):
                    changes.append(
                        Change(
                            path=f"{entity}.{field}", change="changed",
                            old=was.get(field, "none"), new=now.get(field, "none"),
                        )
                    )  # fmt: skip
    return changes
