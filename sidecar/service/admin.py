"""Admin writes: customers, grants, budgets, proxy keys, scoped tokens. Every field is checked,
and the caller's scope (access.py), before anything moves; every change is audited
(service/audit.py)."""

from __future__ import annotations

from typing import Any

import msgspec

from sidecar.access import OPERATOR, ROLES, Caller, require
from sidecar.catalog.compile import compile_overrides
from sidecar.catalog.model import MAX_PRIORITY
from sidecar.engine.alerts import compile_thresholds, describe
from sidecar.engine.decide import check_idempotency_key
from sidecar.errors import InvalidInput
from sidecar.ids import check_id
from sidecar.money import format_credits, parse_credits
from sidecar.service.audit import audit_fields
from sidecar.service.context import Context
from sidecar.service.keys import ADMIN_TOKENS, PROXY_KEYS, KeyRecord, key_id, key_view, token_view
from sidecar.store import layout
from sidecar.times import format_time, parse_time
from sidecar.wire import (
    AlertRule,
    AlertsResponse,
    BudgetScope,
    CustomerResponse,
    GrantRequest,
    GrantResponse,
    IssueProxyKeyRequest,
    IssueProxyKeyResponse,
    IssueTokenRequest,
    IssueTokenResponse,
    ProxyKeysResponse,
    RevokeProxyKeyResponse,
    RevokeTokenResponse,
    SetAlertsRequest,
    SetAlertsResponse,
    SetBudgetRequest,
    SetBudgetResponse,
    TokensResponse,
    UpsertCustomerRequest,
)

__all__ = ["Admin"]

LABEL_MAX = 200


def _label(text: str) -> str:
    if len(text) > LABEL_MAX:
        raise InvalidInput("label", f"is {len(text)} characters; use at most {LABEL_MAX}")
    return text


def _budget_scope(scope: BudgetScope) -> tuple[str, str | None]:
    """A budget's node (``customer``, ``team:eng``, ...) and the team it is inside, if one."""
    nodes = [
        (kind, check_id(f"scope.{kind}", value))
        for kind in ("team", "user", "agent", "session")
        if (value := getattr(scope, kind)) is not None
    ]
    if len(nodes) > 1:
        raise InvalidInput(
            "scope", "name at most one of team, user, agent, session (none: the customer)"
        )
    if not nodes:
        return "customer", None
    kind, value = nodes[0]
    return f"{kind}:{value}", value if kind == "team" else None


class Admin(Context):
    async def _audit(
        self,
        caller: Caller,
        customer: str,
        action: str,
        detail: dict[str, Any],
        *,
        team: str | None = None,
        once: str | None = None,
    ) -> None:
        fields = audit_fields(caller, customer, action, detail, self.clock(), team=team, once=once)
        await self.store.append_event(customer, fields)

    async def upsert_customer(
        self, customer_id: str, request: UpsertCustomerRequest, caller: Caller = OPERATOR
    ) -> CustomerResponse:
        catalog, now = self.catalog, self.clock()
        check_id("customer", customer_id)
        require(caller, customer_id, "operator")
        if request.plan not in catalog.plans:
            raise InvalidInput(
                "plan", f"unknown plan {request.plan!r}; use one of {', '.join(catalog.plans)}"
            )
        overrides = ""
        if request.overrides is not None:
            compile_overrides(request.overrides, catalog)
            overrides = msgspec.json.encode(request.overrides).decode()
        detail = {"plan": request.plan, "overrides": request.overrides is not None}
        before = await self.store.get_customer(customer_id)
        result = await self.store.upsert_customer(
            customer_id, plan=request.plan, overrides=overrides, now_ms=now,
            audit=audit_fields(caller, customer_id, "customer.upsert", detail, now),
        )  # fmt: skip
        await self.customers.changed(customer_id)
        # A plan change in the middle of a month: the new plan's allowance for the days left.
        changed = before is not None and before.plan != request.plan
        await self.customers.issue_plan_grants(
            customer_id, request.plan, catalog, now, prorated=changed
        )
        return CustomerResponse(customer=customer_id, plan=request.plan, result=result)

    async def grant(
        self, customer_id: str, request: GrantRequest, caller: Caller = OPERATOR
    ) -> GrantResponse:
        catalog, now = self.catalog, self.clock()
        require(caller, customer_id, "operator")
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
        detail = {"grant_id": grant_id, "credit_type": request.credit_type,
                  "amount": format_credits(amount)}  # fmt: skip
        await self._audit(caller, customer_id, "grant", detail, once=grant_id)
        return GrantResponse(
            result=reply.result,
            grant_id=grant_id,
            credit_type=request.credit_type,
            amount=format_credits(amount),
            priority=priority,
            expires_at=None if expires_at_ms is None else format_time(expires_at_ms),
        )

    async def set_budget(
        self, customer_id: str, request: SetBudgetRequest, caller: Caller = OPERATOR
    ) -> SetBudgetResponse:
        catalog, now = self.catalog, self.clock()
        scope, team = _budget_scope(request.scope)
        require(caller, customer_id, "admin", team=team)
        if scope.startswith("session:") and request.period != "lifetime":
            raise InvalidInput("period", "a session budget lasts the session: use lifetime")
        limit = parse_credits(request.limit, "limit")
        await self.existing(customer_id, catalog, now)
        detail = {"scope": scope, "period": request.period, "limit": format_credits(limit),
                  "mode": request.mode}  # fmt: skip
        result = await self.store.set_budget(
            customer_id,
            scope=scope,
            period=request.period,
            limit_nanos=limit,
            mode=request.mode,
            now_ms=now,
            audit=audit_fields(caller, customer_id, "budget.set", detail, now, team=team),
        )
        return SetBudgetResponse(
            scope=scope,
            period=request.period,
            limit=format_credits(limit),
            mode=request.mode,
            result=result,
        )

    async def issue_proxy_key(
        self, customer_id: str, request: IssueProxyKeyRequest, caller: Caller = OPERATOR
    ) -> IssueProxyKeyResponse:
        catalog, now = self.catalog, self.clock()
        check_idempotency_key("idempotency_key", request.idempotency_key)
        team, user, agent = (
            None if value is None else check_id(kind, value)
            for kind, value in (("team", request.team), ("user", request.user),
                                ("agent", request.agent))
        )  # fmt: skip
        require(caller, customer_id, "admin", team=team)
        await self.existing(customer_id, catalog, now)
        record = KeyRecord(
            id=key_id(PROXY_KEYS, customer_id, request.idempotency_key),
            customer=customer_id,
            label=_label(request.label),
            created_ms=now,
            hash="",
            team=team,
            user=user,
            agent=agent,
        )
        issued, secret = await self.keyring.issue(record)
        view = key_view(issued)
        detail = msgspec.structs.asdict(view)
        await self._audit(caller, customer_id, "proxy_key.issue", detail, team=team, once=view.id)
        return IssueProxyKeyResponse(
            result="issued" if secret is not None else "already_issued", key=view, secret=secret
        )

    async def proxy_keys(self, customer_id: str, caller: Caller = OPERATOR) -> ProxyKeysResponse:
        require(caller, customer_id, "viewer", team=caller.team)
        await self.existing(customer_id, self.catalog, self.clock())
        keys = await self.keyring.listed(customer_id)
        return ProxyKeysResponse(
            keys=[key_view(r) for r in keys if caller.team is None or r.team == caller.team]
        )

    async def revoke_proxy_key(
        self, customer_id: str, key: str, caller: Caller = OPERATOR
    ) -> RevokeProxyKeyResponse:
        check_id("customer", customer_id)
        require(caller, customer_id, "admin", team=caller.team)
        record = await self.keyring.find(customer_id, key)
        require(caller, customer_id, "admin", team=record.team)
        record, revoked = await self.keyring.revoke(record, self.clock())
        await self._audit(
            caller, customer_id, "proxy_key.revoke", {"id": key}, team=record.team, once=key
        )
        return RevokeProxyKeyResponse(
            result="revoked" if revoked else "already_revoked", key=key_view(record)
        )

    async def issue_token(
        self, customer_id: str, request: IssueTokenRequest, caller: Caller = OPERATOR
    ) -> IssueTokenResponse:
        catalog, now = self.catalog, self.clock()
        require(caller, customer_id, "operator")
        check_idempotency_key("idempotency_key", request.idempotency_key)
        if request.role not in ROLES:
            raise InvalidInput("role", f"must be one of {', '.join(ROLES)}")
        team = None if request.team is None else check_id("team", request.team)
        expires_ms = None
        if request.expires_at is not None:
            expires_ms = parse_time("expires_at", request.expires_at)
            if expires_ms <= now:
                raise InvalidInput("expires_at", "is in the past; a token must expire later")
        await self.existing(customer_id, catalog, now)
        record = KeyRecord(
            id=key_id(ADMIN_TOKENS, customer_id, request.idempotency_key),
            customer=customer_id,
            label=_label(request.label),
            created_ms=now,
            hash="",
            team=team,
            role=request.role,
            expires_ms=expires_ms,
        )
        issued, secret = await self.tokens.issue(record)
        view = token_view(issued)
        detail = msgspec.structs.asdict(view)
        await self._audit(caller, customer_id, "token.issue", detail, team=team, once=view.id)
        return IssueTokenResponse(
            result="issued" if secret is not None else "already_issued", token=view, secret=secret
        )

    async def admin_tokens(self, customer_id: str, caller: Caller = OPERATOR) -> TokensResponse:
        require(caller, customer_id, "operator")
        await self.existing(customer_id, self.catalog, self.clock())
        return TokensResponse(tokens=[token_view(r) for r in await self.tokens.listed(customer_id)])

    async def revoke_token(
        self, customer_id: str, token: str, caller: Caller = OPERATOR
    ) -> RevokeTokenResponse:
        check_id("customer", customer_id)
        require(caller, customer_id, "operator")
        record, revoked = await self.tokens.revoke(
            await self.tokens.find(customer_id, token), self.clock()
        )
        await self._audit(
            caller, customer_id, "token.revoke", {"id": token}, team=record.team, once=token
        )
        return RevokeTokenResponse(
            result="revoked" if revoked else "already_revoked", token=token_view(record)
        )

    async def set_alerts(
        self, customer_id: str, request: SetAlertsRequest, caller: Caller = OPERATOR
    ) -> SetAlertsResponse:
        catalog, now = self.catalog, self.clock()
        balance = request.target == "balance"
        if balance:
            if request.scope != BudgetScope():
                raise InvalidInput("scope", "the balance is the customer's: leave scope out")
            scope, team, period, field = layout.ALERT_BALANCE, None, None, layout.ALERT_BALANCE
        else:
            scope, team = _budget_scope(request.scope)
            period = request.period
            field = layout.budget_field(scope, period)
        require(caller, customer_id, "admin", team=team)
        rule = ""
        if request.thresholds:
            rule = compile_thresholds("thresholds", request.thresholds, balance=balance)
        await self.existing(customer_id, catalog, now)
        view = AlertRule(
            scope=scope, period=period, thresholds=describe(rule) if rule else [],
            source="customer",
        )  # fmt: skip
        detail = {"scope": scope, "period": period, "thresholds": view.thresholds}
        audit = audit_fields(caller, customer_id, "alerts.set", detail, now, team=team)
        result = await self.store.set_alerts(customer_id, field, rule, audit)
        return SetAlertsResponse(result=result, rule=view)

    async def alerts(self, customer_id: str, caller: Caller = OPERATOR) -> AlertsResponse:
        """The customer's own rules (a team's token: its team's), then the plan's defaults."""
        require(caller, customer_id, "viewer", team=caller.team)
        customer = await self.existing(customer_id, self.catalog, self.clock())
        rules = []
        for field, rule in sorted((await self.store.alert_rules(customer_id)).items()):
            scope, _, period = field.rpartition(layout.SEP)
            if field == layout.ALERT_BALANCE:
                scope, period = field, ""
            if caller.team is not None and scope != f"team:{caller.team}":
                continue
            rules.append(
                AlertRule(scope=scope, period=period or None, thresholds=describe(rule),
                          source="customer")
            )  # fmt: skip
        plan = self.catalog.plans.get(customer.plan)
        defaults = [] if plan is None else [("*", plan.alert_budgets)]
        if plan is not None and caller.team is None:
            defaults.append((layout.ALERT_BALANCE, plan.alert_balance))
        for scope, default in defaults:
            if default is not None:
                view = AlertRule(scope=scope, period=None, thresholds=describe(default),
                                 source="plan")  # fmt: skip
                rules.append(view)
        return AlertsResponse(rules=rules)
