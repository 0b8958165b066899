"""Read views: a customer's balance and budgets, each from one read of the store."""

from __future__ import annotations

import msgspec

from sidecar.access import OPERATOR, Caller, require
from sidecar.engine.burn import parse_burn_key
from sidecar.engine.decide import subject_scopes
from sidecar.ids import check_id
from sidecar.money import format_credits
from sidecar.service.context import Context
from sidecar.store.records import BudgetRow
from sidecar.times import format_time
from sidecar.wire import BalanceResponse, BucketState, BudgetsResponse, BudgetState

__all__ = ["Views"]


def _budget(row: BudgetRow) -> BudgetState:
    return BudgetState(
        scope=row.scope,
        period=row.period,
        limit=format_credits(row.limit),
        mode=row.mode,
        used=format_credits(row.used),
        held=format_credits(row.held),
        remaining=format_credits(row.limit - row.used - row.held),
    )


def _budgets(rows: list[BudgetRow]) -> list[BudgetState]:
    return [_budget(row) for row in sorted(rows, key=lambda row: (row.scope, row.period))]


class Views(Context):
    async def balance(self, customer_id: str) -> BalanceResponse:
        catalog, now = self.catalog, self.clock()
        customer = await self.existing(customer_id, catalog, now)
        state = await self.store.balance_state(customer_id, now)
        buckets = []
        total = 0
        for member, amount in sorted(state.buckets.items()):
            priority, expires_at_ms, _created, credit_type, grant_id = parse_burn_key(member)
            if expires_at_ms is not None and expires_at_ms <= now:
                continue
            total += amount
            buckets.append(
                BucketState(
                    grant_id=grant_id,
                    credit_type=credit_type,
                    amount=format_credits(amount),
                    priority=priority,
                    expires_at=None if expires_at_ms is None else format_time(expires_at_ms),
                )
            )
        return BalanceResponse(
            customer=customer_id,
            plan=customer.plan,
            balance=format_credits(total - state.held),
            held=format_credits(state.held),
            buckets=buckets,
            budgets=_budgets(state.budgets),
            uncovered_used=format_credits(state.uncovered),
            overage_used=format_credits(state.uncovered),  # deprecated name, until 0.3
        )

    async def budgets(
        self,
        customer_id: str,
        *,
        team: str | None = None,
        user: str | None = None,
        agent: str | None = None,
        session: str | None = None,
    ) -> BudgetsResponse:
        """Budget state of every node on one subject path (all of the customer's when bare)."""
        subject = {"team": team, "user": user, "agent": agent, "session": session}
        for field, value in subject.items():
            if value is not None:
                check_id(field, value)
        catalog, now = self.catalog, self.clock()
        await self.existing(customer_id, catalog, now)
        rows = await self.store.budget_state(customer_id, now)
        if any(value is not None for value in subject.values()):
            scopes = set(subject_scopes(team, user, agent))
            if session is not None:
                scopes.add(f"session:{session}")
            rows = [row for row in rows if row.scope in scopes]
        return BudgetsResponse(customer=customer_id, budgets=_budgets(rows))

    async def customer_state(self, customer_id: str, caller: Caller = OPERATOR) -> BalanceResponse:
        """The balance view of the admin API: a team's token sees its team's budgets only."""
        require(caller, customer_id, "viewer", team=caller.team)
        state = await self.balance(customer_id)
        if caller.team is None:
            return state
        mine = [b for b in state.budgets if b.scope == f"team:{caller.team}"]
        return msgspec.structs.replace(state, budgets=mine)
