"""A customer as the engine sees it: a plan plus contract overrides, resolved against a catalog."""

from __future__ import annotations

import msgspec

from sidecar.catalog.model import Catalog, Contract

__all__ = ["CustomerSnapshot", "limit_of", "outcome_price_of", "prices_of"]


class CustomerSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    plan: str
    overrides: Contract | None = None
    """Overrides set through the admin API; they win over the catalog's contract."""


def _contracts(catalog: Catalog, customer: CustomerSnapshot) -> tuple[Contract, ...]:
    contract = catalog.contracts.get(customer.id)
    layers = (contract, customer.overrides)
    return tuple(layer for layer in layers if layer is not None)


def prices_of(catalog: Catalog, customer: CustomerSnapshot, model: str) -> dict[str, int]:
    """Femto-credits per unit of ``model`` for this customer, contract overrides applied."""
    prices = dict(catalog.prices_femtos.get(model, {}))
    for contract in _contracts(catalog, customer):
        prices.update(contract.prices_femtos.get(model, {}))
    return prices


def outcome_price_of(catalog: Catalog, customer: CustomerSnapshot, outcome: str) -> int | None:
    price = catalog.outcome_prices_femtos.get(outcome)
    for contract in _contracts(catalog, customer):
        price = contract.outcome_prices_femtos.get(outcome, price)
    return price


def limit_of(catalog: Catalog, customer: CustomerSnapshot, feature: str) -> int | None:
    """Units per period of a metered feature for this customer; None is unlimited."""
    plan = catalog.plans[customer.plan]
    limit = plan.features[feature].limit
    for contract in _contracts(catalog, customer):
        limit = contract.limits.get(feature, limit)
    return limit
