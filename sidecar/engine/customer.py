"""A customer as the engine sees it: a plan plus contract overrides, resolved against a catalog."""

from __future__ import annotations

import msgspec

from sidecar.catalog.model import Catalog, Contract, Tiers

__all__ = [
    "CustomerSnapshot",
    "discount_of",
    "limit_of",
    "minimum_of",
    "outcome_price_of",
    "prices_of",
    "tiers_of",
]


class CustomerSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    plan: str
    overrides: Contract | None = None
    """Overrides set through the admin API; they win over the catalog's contract."""


def _contracts(catalog: Catalog, customer: CustomerSnapshot) -> tuple[Contract, ...]:
    contract = catalog.contracts.get(customer.id)
    layers = (contract, customer.overrides)
    return tuple(layer for layer in layers if layer is not None)


def discount_of(catalog: Catalog, customer: CustomerSnapshot) -> int:
    """The contract's percent off every usage price (the last layer that sets one); 0."""
    discount = 0
    for contract in _contracts(catalog, customer):
        if contract.discount_percent is not None:
            discount = contract.discount_percent
    return discount


def minimum_of(catalog: Catalog, customer: CustomerSnapshot) -> int | None:
    """The contract's monthly commitment in nano-credits, if it has one."""
    minimum = None
    for contract in _contracts(catalog, customer):
        if contract.minimum_nanos is not None:
            minimum = contract.minimum_nanos
    return minimum


def _discounted(price: int, discount: int) -> int:
    """A price with ``discount`` percent off, rounded down to the femto-credit (the customer's
    way)."""
    return price * (100 - discount) // 100


def prices_of(
    catalog: Catalog, customer: CustomerSnapshot, model: str, *, listed: bool = False
) -> dict[str, int]:
    """Femto-credits per unit of ``model`` for this customer, contract overrides and its
    discount applied (``listed``: before the discount)."""
    prices = dict(catalog.prices_femtos.get(model, {}))
    for contract in _contracts(catalog, customer):
        prices.update(contract.prices_femtos.get(model, {}))
    discount = 0 if listed else discount_of(catalog, customer)
    return {kind: _discounted(price, discount) for kind, price in prices.items()}


def tiers_of(
    catalog: Catalog, customer: CustomerSnapshot, model: str, *, listed: bool = False
) -> dict[str, Tiers]:
    """The graduated tiers of ``model`` for this customer, by unit kind: a contract's tiers
    replace the catalog's, a contract's flat price removes them; its discount applied
    (``listed``: before it)."""
    tiers = dict(catalog.tiers_femtos.get(model, {}))
    for contract in _contracts(catalog, customer):
        for kind in contract.prices_femtos.get(model, {}):
            tiers.pop(kind, None)
        tiers.update(contract.tiers_femtos.get(model, {}))
    discount = 0 if listed else discount_of(catalog, customer)
    return {
        kind: tuple((up_to, _discounted(price, discount)) for up_to, price in table)
        for kind, table in tiers.items()
    }


def outcome_price_of(
    catalog: Catalog, customer: CustomerSnapshot, outcome: str, *, listed: bool = False
) -> int | None:
    price = catalog.outcome_prices_femtos.get(outcome)
    for contract in _contracts(catalog, customer):
        price = contract.outcome_prices_femtos.get(outcome, price)
    if price is None or listed:
        return price
    return _discounted(price, discount_of(catalog, customer))


def limit_of(catalog: Catalog, customer: CustomerSnapshot, feature: str) -> int | None:
    """Units per period of a metered feature for this customer; None is unlimited."""
    plan = catalog.plans[customer.plan]
    limit = plan.features[feature].limit
    for contract in _contracts(catalog, customer):
        limit = contract.limits.get(feature, limit)
    return limit
