"""Who calls an admin API, and what that caller may do. Pure: no I/O.

The operator (the deployment's admin or ledger token) may do everything. A scoped admin token
(service/keys.py) belongs to one customer, and optionally to one team inside it, with a role:
``viewer`` reads usage, balance, budgets, invoices and the audit trail of its scope; ``admin``
also sets budgets, alerts, proxy keys and webhooks inside it. Grants, plans, prices and tokens
stay the operator's. A request outside the scope is refused 403 naming the scope.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from sidecar.errors import PermissionDenied

__all__ = ["OPERATOR", "ROLES", "Caller", "Need", "require"]

Role = Literal["viewer", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "admin")
Need = Literal["viewer", "admin", "operator"]
"""What an operation asks of its caller: to read a scope, to change it, or to be the operator."""
FIELD = "Authorization"


class Caller(msgspec.Struct, frozen=True, kw_only=True):
    actor: str
    """``operator``, or the id of the scoped token: what the audit trail records."""
    role: Literal["operator", "viewer", "admin"] = "operator"
    customer: str | None = None
    team: str | None = None

    @property
    def scope(self) -> str:
        if self.customer is None:
            return "the operator"
        team = f" team {self.team!r}" if self.team is not None else ""
        return f"customer {self.customer!r}{team}"


OPERATOR = Caller(actor="operator")


def require(caller: Caller, customer: str, need: Need, *, team: str | None = None) -> None:
    """Refuse ``caller`` (PermissionDenied) unless it may ``need`` on ``customer``, on its
    ``team`` (None: the whole customer, or something no team owns)."""
    if caller.role == "operator":
        return
    where = f"this token is scoped to {caller.scope}"
    if customer != caller.customer:
        raise PermissionDenied(FIELD, f"{where}; it cannot reach customer {customer!r}")
    if need == "operator":
        raise PermissionDenied(
            FIELD,
            f"{where}; grants, corrections, plans, prices and tokens need the operator's token",
        )
    if need == "admin" and caller.role == "viewer":
        raise PermissionDenied(FIELD, f"{where} as a viewer, which only reads")
    if caller.team is not None and team != caller.team:
        target = "the whole customer" if team is None else f"team {team!r}"
        raise PermissionDenied(FIELD, f"{where}; it cannot reach {target}")
