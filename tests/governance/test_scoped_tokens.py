"""Scoped admin tokens: a table walks every admin and ledger route, over HTTP and gRPC, with
every role, for the token's own customer and for another; revocation and expiry; the audit
trail of changes made with a token."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import grpc
import msgspec
import pytest

from sidecar.rpc.gen.creditgate.v1 import creditgate_pb2 as pb
from sidecar.rpc.gen.creditgate.v1 import creditgate_pb2_grpc as pb_grpc
from sidecar.service.keys import ADMIN_TOKENS, KeyRecord, verify
from sidecar.store import layout
from sidecar.store.redis_store import RedisStore
from tests.governance.conftest import ADMIN_TOKEN, LEDGER_TOKEN, Deployment

pytestmark = [pytest.mark.redis, pytest.mark.postgres]

ROLES = {  # name -> (role, team); None: the operator
    "operator": None,
    "admin": ("admin", None),
    "viewer": ("viewer", None),
    "team admin": ("admin", "eng"),
    "team viewer": ("viewer", "eng"),
}
DAY = "from=2026-01-01T00:00:00Z&to=2030-01-01T00:00:00Z"
REVOKED_WITHIN_S = 5.0
"""Far above a publish on a busy machine; the cache would keep a token 30 s."""


def _allowed(role: str, need: str, team: str | None) -> bool:
    """What access.py promises: the operator does everything; a viewer reads; a team's
    token stays inside its team; grants, plans, prices and tokens are the operator's."""
    scope = ROLES[role]
    if scope is None:
        return True
    kind, token_team = scope
    if need == "operator" or (need == "admin" and kind == "viewer"):
        return False
    return token_team is None or team == token_team


def _routes(customer: str, proxy_key: str, token_id: str) -> list[tuple[str, str, Any, str, Any]]:
    """(method, path, body, need, team): every route of the sidecar's admin API, on
    ``customer``."""
    base = f"/customers/{customer}"

    def budget(**scope: str) -> dict[str, Any]:
        return {"scope": scope, "period": "month", "limit": "5", "mode": "hard"}

    return [
        ("PUT", base, {"plan": "pro"}, "operator", None),
        ("GET", base, None, "viewer", "eng"),
        ("POST", f"{base}/grants",
         {"credit_type": "paid", "amount": "1", "idempotency_key": "g"}, "operator", None),
        ("PUT", f"{base}/budgets", budget(team="eng"), "admin", "eng"),
        ("PUT", f"{base}/budgets", budget(team="ops"), "admin", "ops"),
        ("PUT", f"{base}/budgets", budget(), "admin", None),
        ("PUT", f"{base}/budgets", budget(user="ann"), "admin", None),
        ("POST", f"{base}/proxy-keys", {"idempotency_key": "k", "team": "eng"}, "admin", "eng"),
        ("POST", f"{base}/proxy-keys", {"idempotency_key": "k2"}, "admin", None),
        ("GET", f"{base}/proxy-keys", None, "viewer", "eng"),
        ("DELETE", f"{base}/proxy-keys/{proxy_key}", None, "admin", "eng"),
        ("PUT", f"{base}/alerts",
         {"scope": {"team": "eng"}, "thresholds": ["50%"]}, "admin", "eng"),
        ("PUT", f"{base}/alerts", {"target": "balance", "thresholds": ["1"]}, "admin", None),
        ("GET", f"{base}/alerts", None, "viewer", "eng"),
        ("POST", f"{base}/tokens", {"idempotency_key": "t", "role": "viewer"}, "operator", None),
        ("GET", f"{base}/tokens", None, "operator", None),
        ("DELETE", f"{base}/tokens/{token_id}", None, "operator", None),
    ]  # fmt: skip


def _ledger_routes(customer: str, hook: str) -> list[tuple[str, str, Any, str, Any]]:
    """Every route of the ledger's query API but ``/console/login`` (which takes the token in
    its query and checks it the same way), on ``customer``; ``hook``: a webhook endpoint of
    the customer's, then of the operator's."""
    base = f"/ledger/v1/customers/{customer}"
    own, operators = hook.split(" ")
    return [
        ("GET", f"{base}/balance", None, "viewer", "eng"),
        ("GET", f"{base}/budgets", None, "viewer", "eng"),
        ("GET", f"{base}/alerts?{DAY}", None, "viewer", "eng"),
        ("POST", f"{base}/webhooks", {"url": "http://127.0.0.1:9/h"}, "admin", None),
        ("GET", f"{base}/webhooks", None, "viewer", None),
        ("GET", f"{base}/webhooks/{own}/deliveries", None, "viewer", None),
        ("DELETE", f"{base}/webhooks/{own}", None, "admin", None),
        ("POST", "/ledger/v1/webhooks", {"url": "http://127.0.0.1:9/h"}, "operator", None),
        ("GET", "/ledger/v1/webhooks", None, "operator", None),
        ("GET", f"/ledger/v1/webhooks/{operators}/deliveries", None, "operator", None),
        ("DELETE", f"/ledger/v1/webhooks/{operators}", None, "operator", None),
        ("GET", f"/console?customer={customer}", None, "viewer", "eng"),
        ("GET", f"{base}/usage?{DAY}&group_by=team", None, "viewer", "eng"),
        ("GET", f"{base}/audit?{DAY}", None, "viewer", "eng"),
        ("GET", f"{base}/invoice?month=2026-12", None, "viewer", None),
        ("GET", f"/ledger/v1/export?{DAY}&customer={customer}", None, "viewer", None),
        ("GET", "/ledger/v1/status", None, "operator", None),
    ]


async def _tokens(deployment: Deployment) -> dict[str, str]:
    tokens = {"operator": ""}
    for name, scope in ROLES.items():
        if scope is not None:
            tokens[name] = await deployment.token("acme", scope[0], scope[1])
    return tokens


async def _fixtures(deployment: Deployment, customer: str) -> tuple[str, str]:
    """A proxy key of team eng and a spare token of ``customer``, for the revoke routes."""
    base = f"/customers/{customer}"
    key = await deployment.operator(
        "POST", f"{base}/proxy-keys", {"idempotency_key": "eng-key", "team": "eng"}
    )
    spare = await deployment.operator(
        "POST", f"{base}/tokens", {"idempotency_key": "spare", "role": "viewer"}
    )
    return str(key["key"]["id"]), str(spare["token"]["id"])


async def _hooks(deployment: Deployment, customer: str) -> str:
    """A webhook endpoint of ``customer`` and one of the operator's, for the routes that name
    one: their ids, space-separated."""
    ids = []
    for path in (f"/customers/{customer}/webhooks", "/webhooks"):
        body = {"url": "http://127.0.0.1:9/hook"}
        status, answer = await deployment.call(
            "POST", deployment.ledger_url(path), LEDGER_TOKEN, body
        )
        assert status == 200, answer
        ids.append(answer["id"])
    return " ".join(ids)


async def test_every_route_with_every_role_stays_inside_the_tokens_scope(
    deployment: Deployment,
) -> None:
    tokens = await _tokens(deployment)
    walked = 0
    for customer in ("acme", "globex"):
        key, spare = await _fixtures(deployment, customer)
        table = [
            (deployment.admin(p), m, b, n, t, ADMIN_TOKEN)
            for m, p, b, n, t in _routes(customer, key, spare)
        ]
        hooks = await _hooks(deployment, customer)
        table += [
            (f"http://127.0.0.1:{deployment.ledger.port}{p}", m, b, n, t, LEDGER_TOKEN)
            for m, p, b, n, t in _ledger_routes(customer, hooks)
        ]
        for url, method, body, need, team, operator in table:
            for role, scoped in tokens.items():
                token = operator if role == "operator" else scoped
                status, answer = await deployment.call(method, url, token, body)
                expected = _allowed(role, need, team) and (role == "operator" or customer == "acme")
                where = f"{role} {method} {url}"
                if expected:
                    assert status == 200, (where, answer)
                else:
                    assert status == 403, (where, answer)
                    error = answer["error"] if isinstance(answer, dict) else {}
                    assert (error["code"], error["field"]) == ("permission_denied", "Authorization")
                    assert "scoped to customer 'acme'" in error["message"], (where, error)
                walked += 1
    assert walked == 2 * (17 + 17) * len(tokens)


async def test_grpc_routes_follow_the_same_scope(deployment: Deployment) -> None:
    tokens = await _tokens(deployment)
    key, spare = await _fixtures(deployment, "acme")
    await _fixtures(deployment, "globex")
    target = f"127.0.0.1:{deployment.sidecars[0].grpc_admin_port}"

    def budget(customer: str, **scope: str) -> Any:
        return pb.SetBudgetRequest(
            customer=customer, scope=pb.BudgetScope(**scope), period=pb.PERIOD_MONTH,
            limit_nanos=5 * 10**9, mode=pb.BUDGET_MODE_HARD,
        )  # fmt: skip

    def calls(customer: str) -> list[tuple[str, Any, str, str | None]]:
        return [
            ("UpsertCustomer", pb.UpsertCustomerRequest(customer=customer, plan="pro"),
             "operator", None),
            ("GetCustomer", pb.GetCustomerRequest(customer=customer), "viewer", "eng"),
            ("Grant", pb.GrantRequest(customer=customer, credit_type="paid", amount_nanos=10**9,
                                      idempotency_key="g"), "operator", None),
            ("SetBudget", budget(customer, team="eng"), "admin", "eng"),
            ("SetBudget", budget(customer, team="ops"), "admin", "ops"),
            ("SetBudget", budget(customer), "admin", None),
            ("IssueProxyKey", pb.IssueProxyKeyRequest(customer=customer, idempotency_key="k",
                                                      team="eng"), "admin", "eng"),
            ("ListProxyKeys", pb.ListProxyKeysRequest(customer=customer), "viewer", "eng"),
            ("RevokeProxyKey", pb.RevokeProxyKeyRequest(customer=customer, key_id=key),
             "admin", "eng"),
            ("SetAlerts", pb.SetAlertsRequest(customer=customer, thresholds=["50%"],
                                              scope=pb.BudgetScope(team="eng")), "admin", "eng"),
            ("SetAlerts", pb.SetAlertsRequest(customer=customer, thresholds=["1"],
                                              target=pb.ALERT_TARGET_BALANCE), "admin", None),
            ("ListAlerts", pb.ListAlertsRequest(customer=customer), "viewer", "eng"),
            ("IssueToken", pb.IssueTokenRequest(customer=customer, idempotency_key="t",
                                                role=pb.TOKEN_ROLE_VIEWER), "operator", None),
            ("ListTokens", pb.ListTokensRequest(customer=customer), "operator", None),
            ("RevokeToken", pb.RevokeTokenRequest(customer=customer, id=spare),
             "operator", None),
        ]  # fmt: skip

    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.CreditgateAdminServiceStub(channel)  # type: ignore[no-untyped-call]
        methods = {m.name for m in pb.DESCRIPTOR.services_by_name["CreditgateAdminService"].methods}
        assert {name for name, *_ in calls("acme")} == methods  # every rpc is walked
        for customer in ("acme", "globex"):
            for name, request, need, team in calls(customer):
                for role, token in tokens.items():
                    if role == "operator":
                        continue  # the operator's calls are the rest of the suite
                    metadata = (("authorization", f"Bearer {token}"),)
                    allowed = _allowed(role, need, team) and customer == "acme"
                    refused: grpc.aio.AioRpcError | None = None
                    try:  # revoking twice answers already_revoked: allowed all the same
                        await getattr(stub, name)(request, metadata=metadata)
                    except grpc.aio.AioRpcError as error:
                        refused = error
                    if allowed:
                        assert refused is None, (role, name, customer, refused.details())
                    else:
                        assert refused is not None, (role, name, customer)
                        assert refused.code() == grpc.StatusCode.PERMISSION_DENIED
                        assert "scoped to customer 'acme'" in (refused.details() or "")


async def test_alert_rules_over_grpc_answer_as_over_http(deployment: Deployment) -> None:
    target = f"127.0.0.1:{deployment.sidecars[0].grpc_admin_port}"
    admin = await deployment.token("acme", "admin")
    metadata = (("authorization", f"Bearer {admin}"),)
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.CreditgateAdminServiceStub(channel)  # type: ignore[no-untyped-call]
        request = pb.SetAlertsRequest(
            customer="acme", thresholds=["25%", "2.5"], scope=pb.BudgetScope(team="eng"),
            period=pb.PERIOD_DAY,
        )  # fmt: skip
        answer = await stub.SetAlerts(request, metadata=metadata)
        assert answer.result == pb.SET_ALERTS_RESULT_SET
        assert list(answer.rule.thresholds) == ["25%", "2.500000000"]
        listed = await stub.ListAlerts(pb.ListAlertsRequest(customer="acme"), metadata=metadata)
        bad = pb.SetAlertsRequest(customer="acme", thresholds=["0%"])
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.SetAlerts(bad, metadata=metadata)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "thresholds[0]" in (refused.value.details() or "")
    _, http = await deployment.call("GET", deployment.admin("/customers/acme/alerts"), admin)
    periods = [r.period if r.HasField("period") else None for r in listed.rules]
    assert [
        (r.scope, p, list(r.thresholds)) for r, p in zip(listed.rules, periods, strict=True)
    ] == [(r["scope"], r["period"], r["thresholds"]) for r in http["rules"]]
    own = {"scope": "team:eng", "period": "day", "thresholds": ["25%", "2.500000000"],
           "source": "customer"}  # fmt: skip
    assert http["rules"][0] == own


async def test_a_revoked_token_is_refused_at_once_on_every_sidecar_and_the_ledger(
    deployment: Deployment,
) -> None:
    secret = await deployment.token("acme", "viewer")
    path = "/customers/acme"
    for index in (0, 1):  # both sidecars cache it
        status, _ = await deployment.call("GET", deployment.admin(path, index), secret)
        assert status == 200
    status, _ = await deployment.call("GET", deployment.ledger_url(f"{path}/balance"), secret)
    assert status == 200
    token_id = secret.partition(".")[0]
    revoked = await deployment.operator("DELETE", f"{path}/tokens/{token_id}")
    assert revoked["result"] == "revoked"
    status, answer = await deployment.call("GET", deployment.ledger_url(f"{path}/balance"), secret)
    assert (status, answer["error"]["code"]) == (401, "unauthenticated")
    deadline = time.monotonic() + REVOKED_WITHIN_S
    while True:
        status, answer = await deployment.call("GET", deployment.admin(path, 1), secret)
        if status == 401:
            assert "revoked" in answer["error"]["message"]
            break
        assert status == 200
        assert time.monotonic() < deadline, "the other sidecar still accepts a revoked token"
        await asyncio.sleep(0.01)
    again = await deployment.operator("DELETE", f"{path}/tokens/{token_id}")
    assert again["result"] == "already_revoked"


async def test_an_expired_or_unknown_token_is_refused_401(
    deployment: Deployment, store: RedisStore
) -> None:
    secret = await deployment.token("acme", "admin", expires_at="2099-01-01T00:00:00Z")
    token_id = secret.partition(".")[0]
    key = layout.Layout().credential_key(layout.ADMIN_TOKENS, token_id)
    record = msgspec.json.decode(await store.client.get(key), type=KeyRecord)
    past = msgspec.structs.replace(record, expires_ms=1_000)
    await store.client.set(key, msgspec.json.encode(past))  # as if 2099 had come
    for url in (
        deployment.admin("/customers/acme"),
        deployment.ledger_url("/customers/acme/balance"),
    ):
        status, answer = await deployment.call("GET", url, secret)
        assert status == 401, answer
        assert "expired at 1970-01-01T00:00:01" in answer["error"]["message"]
    for bad in ("at_unknown.x", secret + "x", "at_"):
        status, answer = await deployment.call("GET", deployment.admin("/customers/acme"), bad)
        assert (status, answer["error"]["code"]) == (401, "unauthenticated"), bad
    with pytest.raises(Exception, match="expired"):
        verify(ADMIN_TOKENS, msgspec.json.encode(past), secret, 2_000)
    listed = await deployment.operator("GET", "/customers/acme/tokens")
    assert all("secret" not in t and "hash" not in t for t in listed["tokens"])
    assert [t["expires_at"] for t in listed["tokens"]] == ["1970-01-01T00:00:01.000Z"]


async def test_a_scoped_admins_changes_are_in_the_audit_trail_of_its_scope(
    deployment: Deployment,
) -> None:
    admin = await deployment.token("acme", "admin")
    team_viewer = await deployment.token("acme", "viewer", "eng")
    base = "/customers/acme"
    for team in ("eng", "ops"):
        body = {"scope": {"team": team}, "period": "month", "limit": "7", "mode": "soft"}
        status, answer = await deployment.call(
            "PUT", deployment.admin(f"{base}/budgets"), admin, body
        )
        assert status == 200, answer
    status, issued = await deployment.call(
        "POST",
        deployment.admin(f"{base}/proxy-keys"),
        admin,
        {"idempotency_key": "a", "team": "eng"},
    )
    assert status == 200
    url = deployment.ledger_url(f"{base}/audit?{DAY}")

    async def trail(token: str) -> list[dict[str, Any]]:
        async with asyncio.timeout(10):  # ingest is asynchronous: wait for the entries
            while True:
                status, answer = await deployment.call("GET", url, token)
                assert status == 200, answer
                mine = [e for e in answer["entries"] if e["actor"] != "operator"]
                if len(mine) >= (3 if token == admin else 2):
                    return mine
                await asyncio.sleep(0.05)

    entries = await trail(admin)
    admin_id = admin.partition(".")[0]
    assert [(e["actor"], e["action"], e["team"]) for e in entries] == [
        (admin_id, "budget.set", "eng"),
        (admin_id, "budget.set", "ops"),
        (admin_id, "proxy_key.issue", "eng"),
    ]
    assert entries[0]["detail"] == {"scope": "team:eng", "period": "month", "limit": "7.000000000",
                                    "mode": "soft"}  # fmt: skip
    assert entries[2]["detail"]["id"] == issued["key"]["id"]
    seen = await trail(team_viewer)
    assert {e["team"] for e in seen} == {"eng"}  # the other team's change is not shown
    status, answer = await deployment.call(
        "GET", deployment.ledger_url(f"/customers/globex/audit?{DAY}"), admin
    )
    assert status == 403
