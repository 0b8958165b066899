"""Check a decoded catalog's references and amounts, and compile it into exact integers."""

from __future__ import annotations

from collections.abc import Iterable

from sidecar.catalog.model import (
    MAX_PRIORITY,
    MODEL_UNIT_KINDS,
    Catalog,
    Contract,
    CreditType,
    Fallback,
    Feature,
    Grant,
    Plan,
    PlanFeature,
    RateLimit,
    Tiers,
)
from sidecar.catalog.spec import CatalogSpec, ContractSpec, FeatureSpec, PlanSpec, TierSpec
from sidecar.engine.alerts import compile_thresholds
from sidecar.errors import CatalogError, InvalidInput
from sidecar.ids import ID_RULE, is_id
from sidecar.money import MAX_INT64, parse_credits, parse_price

__all__ = ["compile_catalog", "compile_overrides"]

MAX_ROLLOVER_MONTHS = 24
_ALERT_FIXES = {
    "budgets": 'write a whole percent of the limit, "80%", or credits used, "250"',
    "balance": 'write credits left, like "10"',
}


class _Checker:
    def __init__(self, file: str) -> None:
        self.file = file

    def fail(self, path: str, problem: str, fix: str) -> CatalogError:
        return CatalogError(self.file, path, problem, fix)

    def ref(self, path: str, value: str, known: Iterable[str], what: str) -> None:
        known = list(known)
        if value not in known:
            declare = "" if what == "unit kind" else " or declare it"
            raise self.fail(
                path,
                f"unknown {what} {value!r}",
                f"use one of {', '.join(known) or '(none declared)'}{declare}",
            )

    def unique(self, path: str, values: list[str]) -> None:
        seen: set[str] = set()
        for index, value in enumerate(values):
            if value in seen:
                raise self.fail(f"{path}[{index}]", f"duplicate {value!r}", "list it once")
            seen.add(value)

    def price(self, path: str, text: str, *, per_million: bool) -> int:
        if isinstance(text, str) and text.startswith("-"):
            raise self.fail(path, f"negative price {text!r}", "prices must be >= 0")
        try:
            return parse_price(text, path, per_million=per_million)
        except InvalidInput as error:
            limit = "9 fractional digits per million units" if per_million else "15 per unit"
            raise self.fail(
                path,
                f"{error.message}; prices finer than a nano-credit per million units "
                "cannot be represented exactly",
                f"write an exact decimal string with at most {limit}",
            ) from None

    def credits(self, path: str, text: str, *, positive: bool) -> int:
        if isinstance(text, str) and text.startswith("-"):
            raise self.fail(path, f"negative amount {text!r}", "amounts must be >= 0")
        try:
            nanos = parse_credits(text, path)
        except InvalidInput as error:
            raise self.fail(
                path, error.message, 'write credits as a decimal string, e.g. "12.5"'
            ) from None
        if positive and nanos == 0:
            raise self.fail(path, "amount is zero", "use an amount above 0")
        return nanos

    def non_negative(self, path: str, value: int) -> None:
        if value < 0:
            raise self.fail(path, f"negative value {value}", "use a value >= 0")
        if value > MAX_INT64:
            raise self.fail(path, f"value {value} is too large", f"use at most {MAX_INT64}")

    def positive(self, path: str, value: int) -> None:
        self.non_negative(path, value)
        if value == 0:
            raise self.fail(path, "zero", "use a value above 0")

    def prices(
        self, per_million: tuple[str, dict[str, str]], per_unit: tuple[str, dict[str, str]]
    ) -> dict[str, int]:
        """Femto-credits per unit by kind, from a (path, table) per million and one per unit."""
        out: dict[str, int] = {}
        for (path, table), million in ((per_million, True), (per_unit, False)):
            for kind, text in table.items():
                where = f"{path}.{kind}"
                self.ref(where, kind, MODEL_UNIT_KINDS, "unit kind")
                if kind in out:
                    raise self.fail(
                        where, f"{kind} is priced both per unit and per million", "keep one"
                    )
                out[kind] = self.price(where, text, per_million=million)
        return out

    def tiers(
        self, path: str, table: dict[str, list[TierSpec]], prices: dict[str, int]
    ) -> dict[str, Tiers]:
        """Graduated tiers by kind, checked; each kind's highest tier price is added to
        ``prices`` (what a hold counts on)."""
        out: dict[str, Tiers] = {}
        for kind, tiers in table.items():
            where = f"{path}.{kind}"
            self.ref(where, kind, MODEL_UNIT_KINDS, "unit kind")
            if kind in prices:
                raise self.fail(where, f"{kind} has a price and tiers", "keep one of them")
            if not tiers:
                raise self.fail(where, "no tiers", "list at least one tier, or remove the kind")
            out[kind] = self._tier_list(where, tiers)
            prices[kind] = max(price for _, price in out[kind])
        return out

    def _tier_list(self, where: str, tiers: list[TierSpec]) -> Tiers:
        compiled: list[tuple[int | None, int]] = []
        last = 0
        for index, tier in enumerate(tiers):
            at = f"{where}[{index}]"
            if index == len(tiers) - 1:
                if tier.up_to is not None:
                    fix = "remove up_to from the last tier: it prices the rest"
                    raise self.fail(f"{at}.up_to", "the last tier has an end", fix)
            elif tier.up_to is None or tier.up_to <= last:
                fix = f"give every tier but the last an up_to above {last}"
                raise self.fail(f"{at}.up_to", f"{tier.up_to} units", fix)
            if (tier.price_per_million is None) == (tier.price is None):
                raise self.fail(at, "needs one price", "set price_per_million or price")
            million = tier.price_per_million is not None
            text = tier.price_per_million if million else tier.price
            assert text is not None
            field = "price_per_million" if million else "price"
            compiled.append((tier.up_to, self.price(f"{at}.{field}", text, per_million=million)))
            last = tier.up_to or last
        return tuple(compiled)


def compile_catalog(spec: CatalogSpec, *, file: str, version: str) -> Catalog:
    """Validate every reference and amount of ``spec``; raise CatalogError naming the fix."""
    check = _Checker(file)
    for section in ("credit_types", "models", "outcomes", "features", "plans", "contracts"):
        for key in getattr(spec, section):
            if not is_id(key):
                raise check.fail(f"{section}.{key}", f"invalid id {key!r}", f"use {ID_RULE}")
    models = list(spec.models)

    credit_types = {}
    for type_id, credit_type in spec.credit_types.items():
        path = f"credit_types.{type_id}"
        check.non_negative(f"{path}.priority", credit_type.priority)
        if credit_type.priority > MAX_PRIORITY:
            raise check.fail(
                f"{path}.priority",
                f"priority {credit_type.priority} is above {MAX_PRIORITY}",
                f"use a priority from 0 to {MAX_PRIORITY}",
            )
        if credit_type.models is not None:
            check.unique(f"{path}.models", credit_type.models)
            for index, model in enumerate(credit_type.models):
                check.ref(f"{path}.models[{index}]", model, models, "model")
        credit_types[type_id] = CreditType(
            id=type_id,
            priority=credit_type.priority,
            models=frozenset(credit_type.models) if credit_type.models is not None else None,
        )

    prices = {
        model: check.prices(
            (f"models.{model}.prices_per_million", model_spec.prices_per_million),
            (f"models.{model}.prices", model_spec.prices),
        )
        for model, model_spec in spec.models.items()
    }
    costs = {
        model: listed
        for model, model_spec in spec.models.items()
        if (listed := check.prices(
            (f"models.{model}.costs_per_million", model_spec.costs_per_million),
            (f"models.{model}.costs", model_spec.costs),
        ))
    }  # fmt: skip
    graduated = {
        model: table
        for model, model_spec in spec.models.items()
        if (table := check.tiers(f"models.{model}.tiers", model_spec.tiers, prices[model]))
    }

    volume: dict[str, dict[str, tuple[tuple[int, int], ...]]] = {}
    for model, model_spec in spec.models.items():
        for kind, tiers in model_spec.volume.items():
            where = f"models.{model}.volume.{kind}"
            if kind in graduated.get(model, {}):
                raise check.fail(where, f"{kind} has graduated tiers", "keep tiers or volume")
            if kind not in prices[model]:
                raise check.fail(where, f"{model} has no price for {kind}", "price it first")
            compiled, last = [], 0
            for index, tier in enumerate(tiers):
                at = f"{where}[{index}]"
                if tier.units <= last:
                    raise check.fail(
                        f"{at}.units", f"{tier.units} units", "list tiers by growing units, above 0"
                    )
                price = check.price(f"{at}.price_per_million", tier.price_per_million,
                                    per_million=True)  # fmt: skip
                if price > prices[model][kind]:
                    raise check.fail(
                        f"{at}.price_per_million", "is above the list price",
                        "a volume price lowers the price",
                    )  # fmt: skip
                compiled.append((tier.units, price))
                last = tier.units
            volume.setdefault(model, {})[kind] = tuple(compiled)
    if volume:
        if spec.rebate_credit_type is None:
            raise check.fail(
                "rebate_credit_type", "volume pricing has no credit type to rebate in",
                "add rebate_credit_type: paid (a declared credit type)",
            )  # fmt: skip
        check.ref("rebate_credit_type", spec.rebate_credit_type, credit_types, "credit type")

    max_output = {}
    for model, model_spec in spec.models.items():
        if model_spec.max_output_tokens is not None:
            check.positive(f"models.{model}.max_output_tokens", model_spec.max_output_tokens)
            max_output[model] = model_spec.max_output_tokens

    outcome_prices = {}
    for outcome, outcome_spec in spec.outcomes.items():
        path = f"outcomes.{outcome}"
        if outcome in MODEL_UNIT_KINDS:
            raise check.fail(path, f"{outcome!r} is a model unit kind", "name the outcome apart")
        outcome_prices[outcome] = check.price(
            f"{path}.price", outcome_spec.price, per_million=False
        )
    unit_kinds = (*MODEL_UNIT_KINDS, *spec.outcomes)

    features = {}
    for feature_id, feature in spec.features.items():
        path = f"features.{feature_id}"
        if feature.type == "metered":
            if not feature.unit:
                raise check.fail(f"{path}.unit", "metered feature has no unit", "add unit: tokens")
            if not feature.counts:
                raise check.fail(
                    f"{path}.counts",
                    "metered feature counts no unit kind",
                    f"list the unit kinds it counts, from {', '.join(unit_kinds)}",
                )
            check.unique(f"{path}.counts", feature.counts)
            for index, kind in enumerate(feature.counts):
                check.ref(f"{path}.counts[{index}]", kind, unit_kinds, "unit kind")
        elif feature.unit is not None or feature.counts is not None:
            raise check.fail(
                path,
                f"unit and counts apply to metered features, not {feature.type}",
                "remove unit and counts, or make the feature metered",
            )
        if feature.stream_hold_tokens is not None:
            if feature.type != "metered":
                raise check.fail(
                    f"{path}.stream_hold_tokens",
                    "applies to metered features only",
                    "remove it, or make the feature metered",
                )
            check.positive(f"{path}.stream_hold_tokens", feature.stream_hold_tokens)
        features[feature_id] = Feature(
            id=feature_id,
            type=feature.type,
            counts=tuple(feature.counts or ()),
            fallback=_fallback(check, path, feature),
            stream_hold_tokens=feature.stream_hold_tokens,
        )

    plans = {
        plan_id: _plan(check, plan_id, plan, features, models, credit_types)
        for plan_id, plan in spec.plans.items()
    }

    metered = [f for f, feature in features.items() if feature.type == "metered"]
    contracts = {
        customer: _contract(
            check, f"contracts.{customer}", contract, models, spec.outcomes, metered
        )
        for customer, contract in spec.contracts.items()
    }

    return Catalog(
        version=version,
        name=spec.name,
        credit_types=credit_types,
        prices_femtos=prices,
        outcome_prices_femtos=outcome_prices,
        costs_femtos=costs,
        max_output_tokens=max_output,
        volume_femtos=volume,
        tiers_femtos=graduated,
        rebate_credit_type=spec.rebate_credit_type,
        features=features,
        plans=plans,
        contracts=contracts,
    )


def _fallback(check: _Checker, path: str, feature: FeatureSpec) -> Fallback | None:
    if feature.on_store_unavailable == "deny":
        for name in ("overdraft", "overdraft_per_call"):
            if getattr(feature, name) is not None:
                raise check.fail(
                    f"{path}.{name}",
                    f"{name} applies to on_store_unavailable: allow",
                    f"remove {name}, or set on_store_unavailable: allow",
                )
        return None
    if feature.overdraft is None:
        raise check.fail(
            f"{path}.overdraft",
            "on_store_unavailable: allow has no overdraft",
            'add overdraft: "5" (credits one customer may spend per sidecar while Redis is down)',
        )
    per_call = feature.overdraft_per_call
    return Fallback(
        overdraft_nanos=check.credits(f"{path}.overdraft", feature.overdraft, positive=True),
        per_call_nanos=None
        if per_call is None
        else check.credits(f"{path}.overdraft_per_call", per_call, positive=True),
    )


def _plan(
    check: _Checker,
    plan_id: str,
    plan: PlanSpec,
    features: dict[str, Feature],
    models: Iterable[str],
    credit_types: Iterable[str],
) -> Plan:
    path = f"plans.{plan_id}"
    plan_features = {}
    for feature_id, entry in plan.features.items():
        where = f"{path}.features.{feature_id}"
        check.ref(where, feature_id, features, "feature")
        kind = features[feature_id].type
        if entry.limit is not None:
            if kind != "metered":
                raise check.fail(
                    f"{where}.limit",
                    f"limit applies to metered features, {feature_id} is {kind}",
                    "remove the limit",
                )
            check.non_negative(f"{where}.limit", entry.limit)
        if kind == "config" and entry.value is None:
            raise check.fail(f"{where}.value", "config feature has no value", "add value: ...")
        if kind != "config" and entry.value is not None:
            raise check.fail(
                f"{where}.value",
                f"value applies to config features, {feature_id} is {kind}",
                "remove the value",
            )
        plan_features[feature_id] = PlanFeature(
            limit=entry.limit, period=entry.period, value=entry.value
        )
    check.unique(f"{path}.models", plan.models)
    for index, model in enumerate(plan.models):
        check.ref(f"{path}.models[{index}]", model, models, "model")
    grants = []
    for index, grant in enumerate(plan.grants):
        where = f"{path}.grants[{index}]"
        check.ref(f"{where}.credit_type", grant.credit_type, credit_types, "credit type")
        cap, months = None, 1
        if grant.rollover is not None:
            cap = check.credits(f"{where}.rollover.cap", grant.rollover.cap, positive=True)
            months = grant.rollover.expires_after_months
            if not 1 <= months <= MAX_ROLLOVER_MONTHS:
                raise check.fail(
                    f"{where}.rollover.expires_after_months", f"{months} months",
                    f"use 1 to {MAX_ROLLOVER_MONTHS}",
                )  # fmt: skip
        grants.append(
            Grant(
                credit_type=grant.credit_type,
                amount_nanos=check.credits(f"{where}.amount", grant.amount, positive=True),
                rollover_cap_nanos=cap,
                rollover_months=months,
            )
        )
    rate_limits = []
    for index, limit in enumerate(plan.rate_limits):
        where = f"{path}.rate_limits[{index}]"
        if limit.requests_per_minute is None and limit.tokens_per_minute is None:
            raise check.fail(
                where, "rate limit sets no limit", "set requests_per_minute or tokens_per_minute"
            )
        for field in ("requests_per_minute", "tokens_per_minute"):
            value = getattr(limit, field)
            if value is not None and value <= 0:
                raise check.fail(f"{where}.{field}", f"must be > 0, got {value}", "use 1 or more")
            if value is not None:
                check.non_negative(f"{where}.{field}", value)
        rate_limits.append(
            RateLimit(
                scope=limit.scope,
                requests_per_minute=limit.requests_per_minute,
                tokens_per_minute=limit.tokens_per_minute,
            )
        )
    session_budget = None
    if plan.session_budget is not None:
        session_budget = check.credits(f"{path}.session_budget", plan.session_budget, positive=True)
    exhausted = plan.on_credits_exhausted
    where = f"{path}.on_credits_exhausted"
    overage_cap = 0
    if exhausted.action == "overage":
        if exhausted.cap is None:
            raise check.fail(f"{where}.cap", "overage has no cap", 'add cap: "100" (credits)')
        overage_cap = check.credits(f"{where}.cap", exhausted.cap, positive=True)
    elif exhausted.cap is not None:
        raise check.fail(f"{where}.cap", "cap applies to action: overage", "remove the cap")
    alert_rules: dict[str, str | None] = {"budgets": None, "balance": None}
    for name, items in (("budgets", plan.alerts.budgets), ("balance", plan.alerts.balance)):
        if items:
            field = f"{path}.alerts.{name}"
            try:
                alert_rules[name] = compile_thresholds(field, items, balance=name == "balance")
            except InvalidInput as error:
                fix = _ALERT_FIXES[name]
                raise check.fail(error.field, error.message, fix) from None
    fee = 0 if plan.fee is None else check.credits(f"{path}.fee", plan.fee, positive=False)
    floor = None
    if plan.alerts.margin is not None:
        text = plan.alerts.margin
        digits = text[:-1]
        if not (text.endswith("%") and digits.isdigit() and 0 <= int(digits) <= 100):
            raise check.fail(
                f"{path}.alerts.margin", f"{text!r} is not a percent from 0% to 100%",
                'write the margin floor as a whole percent of revenue, like "20%"',
            )  # fmt: skip
        floor = int(digits)
    return Plan(
        id=plan_id,
        features=plan_features,
        models=frozenset(plan.models),
        grants=tuple(grants),
        rate_limits=tuple(rate_limits),
        session_budget_nanos=session_budget,
        overage_cap_nanos=overage_cap,
        alert_budgets=alert_rules["budgets"],
        alert_balance=alert_rules["balance"],
        fee_nanos=fee,
        margin_floor_percent=floor,
    )


def _contract(
    check: _Checker,
    path: str,
    contract: ContractSpec,
    models: Iterable[str],
    outcomes: Iterable[str],
    metered: Iterable[str],
) -> Contract:
    models, outcomes, metered = list(models), list(outcomes), list(metered)
    for field in ("prices_per_million", "prices", "tiers"):
        for model in getattr(contract, field):
            check.ref(f"{path}.{field}.{model}", model, models, "model")
    outcome_prices = {}
    for outcome, text in contract.outcome_prices.items():
        where = f"{path}.outcome_prices.{outcome}"
        check.ref(where, outcome, outcomes, "outcome")
        outcome_prices[outcome] = check.price(where, text, per_million=False)
    for feature_id, limit in contract.limits.items():
        where = f"{path}.limits.{feature_id}"
        check.ref(where, feature_id, metered, "metered feature")
        check.non_negative(where, limit)
    discount = contract.discount_percent
    if discount is not None and not 0 <= discount <= 100:
        raise check.fail(f"{path}.discount_percent", f"{discount} is not a percent", "use 0 to 100")
    minimum = None
    if contract.minimum is not None:
        minimum = check.credits(f"{path}.minimum", contract.minimum, positive=True)
    prices = {
        model: check.prices(
            (f"{path}.prices_per_million.{model}", contract.prices_per_million.get(model, {})),
            (f"{path}.prices.{model}", contract.prices.get(model, {})),
        )
        for model in sorted({*contract.prices_per_million, *contract.prices, *contract.tiers})
    }
    tiers = {
        model: check.tiers(f"{path}.tiers.{model}", table, prices[model])
        for model, table in contract.tiers.items()
    }
    return Contract(
        prices_femtos=prices,
        tiers_femtos=tiers,
        outcome_prices_femtos=outcome_prices,
        limits=dict(contract.limits),
        discount_percent=discount,
        minimum_nanos=minimum,
    )


def compile_overrides(spec: ContractSpec, catalog: Catalog) -> Contract:
    """Compile a customer's contract overrides sent through the admin API.

    Raises InvalidInput naming the field (``overrides.prices_per_million.gpt-4o``) and the fix.
    """
    metered = [f for f, feature in catalog.features.items() if feature.type == "metered"]
    try:
        return _contract(
            _Checker("request"),
            "overrides",
            spec,
            catalog.prices_femtos,
            catalog.outcome_prices_femtos,
            metered,
        )
    except CatalogError as error:
        raise InvalidInput(error.path, f"{error.problem}; fix: {error.fix}") from None
