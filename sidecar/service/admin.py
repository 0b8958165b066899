"""Admin writes: customers, grants, budgets, proxy keys. Every field is checked before
anything moves."""

from __future__ import annotations

import msgspec

from sidecar.catalog.compile import compile_overrides
from sidecar.catalog.model import MAX_PRIORITY
from sidecar.engine.decide import check_idempotency_key
from sidecar.errors import InvalidInput
from sidecar.ids import check_id
from sidecar.money import format_credits, parse_credits
from sidecar.service.context import Context
from sidecar.service.keys import KeyRecord, key_id, key_view
from sidecar.times import format_time, parse_time
from sidecar.wire import (
    CustomerResponse,
    GrantRequest,
    GrantResponse,
    IssueProxyKeyRequest,
    IssueProxyKeyResponse,
    ProxyKeysResponse,
    RevokeProxyKeyResponse,
    SetBudgetRequest,
    SetBudgetResponse,
    UpsertCustomerRequest,
)

__all__ = ["Admin"]

LABEL_MAX = 200


class Admin(Context):
    async def upsert_customer(
        self, customer_id: str, request: UpsertCustomerRequest
    ) -> CustomerResponse:
        catalog, now = self.catalog, self.clock()
        check_id("customer", customer_id)
        if request.plan not in catalog.plans:
            raise InvalidInput(
                "plan", f"unknown plan {request.plan!r}; use one of {', '.join(catalog.plans)}"
            )
        overrides = ""
        if request.overrides is not None:
            compile_overrides(request.overrides, catalog)
            overrides = msgspec.json.encode(request.overrides).decode()
        result = await self.store.upsert_customer(
            customer_id, plan=request.plan, overrides=overrides, now_ms=now
        )
        await self.customers.changed(customer_id)
        await self.customers.issue_plan_grants(customer_id, request.plan, catalog, now)
        return CustomerResponse(customer=customer_id, plan=request.plan, result=result)

    async def grant(self, customer_id: str, request: GrantRequest) -> GrantResponse:
        catalog, now = self.catalog, self.clock()
        check_idempotency_key("idempotency_key", request.idempotency_key)
        credit_type = catalog.credit_types.get(request.credit_type)
        if credit_type is None:
            known = ", ".join(catalog.credit_types)
            raise InvalidInput(
                "credit_type", f"unknown credit type {request.credit_type!r}; use one of {known}"
            )
        amount = parse_credits(request.amount, "amount")
        if amount == 0:
            raise InvalidInput("amount", "must be above 0")
        priority = credit_type.priority if request.priority is None else request.priority
        if not 0 <= priority <= MAX_PRIORITY:
            raise InvalidInput("priority", f"must be an integer from 0 to {MAX_PRIORITY}")
        expires_at_ms = None
        if request.expires_at is not None:
            expires_at_ms = parse_time("expires_at", request.expires_at)
            if expires_at_ms <= now:
                raise InvalidInput(
                    "expires_at", "is in the past; a grant must expire in the future"
                )
        await self.existing(customer_id, catalog, now)
        reply, grant_id = await self.store.grant(
            customer_id,
            idempotency_key=request.idempotency_key,
            credit_type=request.credit_type,
            amount_nanos=amount,
            priority=priority,
            expires_at_ms=expires_at_ms,
            now_ms=now,
            reason="admin",
        )
        return GrantResponse(
            result=reply.result,
            grant_id=grant_id,
            credit_type=request.credit_type,
            amount=format_credits(amount),
            priority=priority,
            expires_at=None if expires_at_ms is None else format_time(expires_at_ms),
        )

    async def set_budget(self, customer_id: str, request: SetBudgetRequest) -> SetBudgetResponse:
        catalog, now = self.catalog, self.clock()
        nodes = [
            (kind, check_id(f"scope.{kind}", value))
            for kind in ("team", "user", "agent", "session")
            if (value := getattr(request.scope, kind)) is not None
        ]
        if len(nodes) > 1:
            raise InvalidInput(
                "scope", "name at most one of team, user, agent, session (none: the customer)"
            )
        scope = f"{nodes[0][0]}:{nodes[0][1]}" if nodes else "customer"
        if scope.startswith("session:") and request.period != "lifetime":
            raise InvalidInput("period", "a session budget lasts the session: use lifetime")
        limit = parse_credits(request.limit, "limit")
        await self.existing(customer_id, catalog, now)
        result = await self.store.set_budget(
            customer_id,
            scope=scope,
            period=request.period,
            limit_nanos=limit,
            mode=request.mode,
            now_ms=now,
        )
        return SetBudgetResponse(
            scope=scope,
            period=request.period,
            limit=format_credits(limit),
            mode=request.mode,
            result=result,
        )

    async def issue_proxy_key(
        self, customer_id: str, request: IssueProxyKeyRequest
    ) -> IssueProxyKeyResponse:
        catalog, now = self.catalog, self.clock()
        check_idempotency_key("idempotency_key", request.idempotency_key)
        team, user, agent = (
            None if value is None else check_id(kind, value)
            for kind, value in (("team", request.team), ("user", request.user),
                                ("agent", request.agent))
        )  # fmt: skip
        if len(request.label) > LABEL_MAX:
            raise InvalidInput(
                "label", f"is {len(request.label)} characters; use at most {LABEL_MAX}"
            )
        await self.existing(customer_id, catalog, now)
        record = KeyRecord(
            id=key_id(customer_id, request.idempotency_key),
            customer=customer_id,
            label=request.label,
            created_ms=now,
            hash="",
            team=team,
            user=user,
            agent=agent,
        )
        issued, secret = await self.keyring.issue(record)
        return IssueProxyKeyResponse(
            result="issued" if secret is not None else "already_issued",
            key=key_view(issued),
            secret=secret,
        )

    async def proxy_keys(self, customer_id: str) -> ProxyKeysResponse:
        await self.existing(customer_id, self.catalog, self.clock())
        return ProxyKeysResponse(keys=[key_view(r) for r in await self.keyring.listed(customer_id)])

    async def revoke_proxy_key(self, customer_id: str, key: str) -> RevokeProxyKeyResponse:
        check_id("customer", customer_id)
        record, revoked = await self.keyring.revoke(customer_id, key, self.clock())
        return RevokeProxyKeyResponse(
            result="revoked" if revoked else "already_revoked", key=key_view(record)
        )
