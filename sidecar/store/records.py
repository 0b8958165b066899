"""What the store's scripts answer, typed: decoded once in the store, never picked apart by key.

Amounts are integer nano-credits (the scripts write them as decimal strings; the decoders
read them as integers). A result code outside its ``Literal`` is a bug and fails decoding.
"""

from __future__ import annotations

from typing import Literal, TypeVar

import msgspec

__all__ = [
    "Attribution",
    "BalanceState",
    "BudgetRow",
    "BurnReply",
    "CommitReply",
    "GrantReply",
    "GrowReply",
    "ReleaseReply",
    "ReserveReply",
    "SetBudgetResult",
    "UpsertResult",
    "decoder",
]

T = TypeVar("T")
SetBudgetResult = Literal["set", "unchanged"]
UpsertResult = Literal["upserted", "unchanged"]


class Attribution(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Who a hold is for; placed with the hold and copied into its debit event."""

    customer: str
    feature: str
    request_id: str
    tags: str
    """JSON text of the request's tags."""
    team: str | None = None
    user: str | None = None
    agent: str | None = None
    session: str | None = None
    model: str | None = None
    decided_by: Literal["store", "fallback"] = "store"
    """``fallback``: the reserve was answered by the sidecar while Redis could not, and
    replayed later (service/fallback.py)."""


class GrowReply(msgspec.Struct, frozen=True, kw_only=True):
    """grow.lua's answer: the hold grown (its new amount), denied by a cap, or not held."""

    result: Literal["grown", "denied", "not_held"]
    held: int = 0
    reason: (
        Literal[
            "budget_exceeded", "session_budget_exceeded", "quota_exceeded", "insufficient_credits"
        ]
        | None
    ) = None
    scope: str | None = None


class ReserveReply(msgspec.Struct, frozen=True, kw_only=True):
    allowed: bool
    reason: Literal[
        "ok",
        "rate_limited",
        "quota_exceeded",
        "budget_exceeded",
        "session_budget_exceeded",
        "insufficient_credits",
    ]
    scope: str | None = None
    reservation_id: str = ""
    held: int = 0
    remaining: dict[str, int] = {}
    soft_limits_hit: list[str] = []


class BurnReply(msgspec.Struct, frozen=True, kw_only=True):
    grant_id: str
    credit_type: str
    amount: int


class CommitReply(msgspec.Struct, frozen=True, kw_only=True):
    result: Literal["committed", "already_committed", "already_released", "not_found"]
    cost: int = 0
    overrun: int = 0
    released: int = 0
    uncovered: int = 0
    burned: list[BurnReply] = []


class ReleaseReply(msgspec.Struct, frozen=True, kw_only=True):
    result: Literal["released", "already_released", "already_committed", "expired", "not_found"]
    released: int = 0


class GrantReply(msgspec.Struct, frozen=True, kw_only=True):
    result: Literal["granted", "already_granted"]


class BudgetRow(msgspec.Struct, frozen=True, kw_only=True):
    scope: str
    period: Literal["day", "month", "lifetime"]
    limit: int
    mode: Literal["hard", "soft"]
    used: int = 0
    held: int = 0


class BalanceState(msgspec.Struct, frozen=True, kw_only=True):
    """A customer's buckets, holds, budgets and uncovered use, read in one script."""

    buckets: dict[str, int] = {}
    """Burn key -> remaining nano-credits, expired buckets included."""
    held: int = 0
    uncovered: int = 0
    """Cost no credit covered this month."""
    budgets: list[BudgetRow] = []


def decoder(kind: type[T]) -> msgspec.json.Decoder[T]:
    """A decoder of one script's answer; ``strict=False`` reads the amounts' strings as ints."""
    return msgspec.json.Decoder(kind, strict=False)
