"""Bad input: the exact status, code and field, a message, and nothing moved anywhere.

"Nothing moved" is checked three ways: the balance and budgets as the API shows them, the
length of acme's event stream, and every key of the Redis server with its whole value.
"""

from __future__ import annotations

from typing import Any

import pytest

from sidecar.store.redis_store import RedisStore
from tests.http.conftest import Answer, Api, state

pytestmark = pytest.mark.redis

RESERVE: dict[str, Any] = {
    "customer": "acme", "team": "eng", "user": "u-1", "agent": "a-1", "session": "s-1",
    "feature": "chat", "model": "gpt-4o-mini",
    "units": {"input_tokens": 1200, "output_tokens": 800},
    "idempotency_key": "bad-1", "ttl_ms": 60_000, "tags": {"workflow": "summarize"},
}  # fmt: skip
BY_AMOUNT: dict[str, Any] = {"customer": "acme", "feature": "chat", "idempotency_key": "bad-2"}
CHECK: dict[str, Any] = {"customer": "acme", "feature": "chat", "team": "eng", "model": "gpt-4o"}
HELD = "HELD"  # stands for the id of a reservation the fixture holds
UNKNOWN_RID = "r_01ARZ3NDEKTSV4RRFFQ69G5FAV_acme"
MISSING = object()


def edit(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """``base`` with fields replaced, added, or removed (value MISSING)."""
    out = {**base, **changes}
    return {key: value for key, value in out.items() if value is not MISSING}


def units(**changes: Any) -> dict[str, Any]:
    return edit(RESERVE, units=edit(RESERVE["units"], **changes))


RESERVE_PATH = "/v1/reserve"
CHECK_PATH = "/v1/check"
COMMIT_PATH = "/v1/commit"
RELEASE_PATH = "/v1/release"
CODES = {400: "invalid_request", 404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}


def case(
    name: str, path: str, body: Any, field: str, *, status: int = 400, method: str = "POST"
) -> Any:
    """One bad request (a body, or raw bytes) and the exact error it must get."""
    return pytest.param(method, path, body, status, field, id=name)


CASES = [
    # wrong types
    case("units-string", RESERVE_PATH, units(input_tokens="1200"), "units.input_tokens"),
    case("units-float", RESERVE_PATH, units(output_tokens=1.5), "units.output_tokens"),
    case("units-bool", RESERVE_PATH, units(input_tokens=True), "units.input_tokens"),
    case("units-list", RESERVE_PATH, edit(RESERVE, units=[1200, 800]), "units"),
    case("customer-int", RESERVE_PATH, edit(RESERVE, customer=7), "customer"),
    case("team-int", RESERVE_PATH, edit(RESERVE, team=7), "team"),
    case("ttl-string", RESERVE_PATH, edit(RESERVE, ttl_ms="60000"), "ttl_ms"),
    case("ttl-bool", RESERVE_PATH, edit(RESERVE, ttl_ms=True), "ttl_ms"),
    case("tags-list", RESERVE_PATH, edit(RESERVE, tags=["a"]), "tags"),
    case("tag-value-int", RESERVE_PATH, edit(RESERVE, tags={"workflow": 1}), "tags.workflow"),
    # NUL: the ledger's PostgreSQL could not store it
    case(
        "tag-value-nul", RESERVE_PATH, edit(RESERVE, tags={"workflow": "a\x00b"}), "tags.workflow"
    ),
    case("tag-key-nul", RESERVE_PATH, edit(RESERVE, tags={"a\x00": "b"}), "tags"),
    case("amount-int", RESERVE_PATH, edit(BY_AMOUNT, amount=12), "amount"),
    case("key-int", RESERVE_PATH, edit(RESERVE, idempotency_key=5), "idempotency_key"),
    case("check-customer-int", CHECK_PATH, edit(CHECK, customer=1), "customer"),
    case("check-model-list", CHECK_PATH, edit(CHECK, model=["gpt-4o"]), "model"),
    case(
        "commit-units-string",
        COMMIT_PATH,
        {"reservation_id": HELD, "units": {"input_tokens": "9"}},
        "units.input_tokens",
    ),
    case("commit-rid-int", COMMIT_PATH, {"reservation_id": 12}, "reservation_id"),
    case("release-rid-object", RELEASE_PATH, {"reservation_id": {"id": HELD}}, "reservation_id"),
    # not an object
    case("array", RESERVE_PATH, [RESERVE], "body"),
    case("string", RESERVE_PATH, "acme", "body"),
    case("null", RESERVE_PATH, b"null", "body"),
    case("malformed", RESERVE_PATH, b'{"customer": "acme",', "body"),
    case("not-json", COMMIT_PATH, b"reservation_id=r_1", "body"),
    case("empty", RELEASE_PATH, b"", "body"),
    case("check-array", CHECK_PATH, b"[]", "body"),
    # missing required fields
    case("no-customer", RESERVE_PATH, edit(RESERVE, customer=MISSING), "customer"),
    case("no-feature", RESERVE_PATH, edit(RESERVE, feature=MISSING), "feature"),
    case("no-key", RESERVE_PATH, edit(RESERVE, idempotency_key=MISSING), "idempotency_key"),
    case("check-no-feature", CHECK_PATH, edit(CHECK, feature=MISSING), "feature"),
    case("commit-no-rid", COMMIT_PATH, {"units": {"input_tokens": 1}}, "reservation_id"),
    case("release-no-rid", RELEASE_PATH, {}, "reservation_id"),
    case("tokens-without-model", RESERVE_PATH, edit(RESERVE, model=MISSING), "model"),
    case("balance-no-customer", "/v1/balance", None, "customer", method="GET"),
    case("budgets-no-customer", "/v1/budgets?team=eng", None, "customer", method="GET"),
    # unknown fields
    case("unknown-top", RESERVE_PATH, edit(RESERVE, priority=1), "priority"),
    case("unknown-unit-kind", RESERVE_PATH, units(image_tokens=5), "units.image_tokens"),
    case(
        "unpriced-unit-kind",
        RESERVE_PATH,
        edit(RESERVE, model="llama-3.1-8b", units={"cached_input_tokens": 5}),
        "units.cached_input_tokens",
    ),
    case("check-unknown", CHECK_PATH, edit(CHECK, units={"input_tokens": 1}), "units"),
    case("commit-unknown", COMMIT_PATH, {"reservation_id": HELD, "cost": "1"}, "cost"),
    case(
        "commit-unknown-unit",
        COMMIT_PATH,
        {"reservation_id": HELD, "units": {"pages": 1}},
        "units.pages",
    ),
    case("release-unknown", RELEASE_PATH, {"reservation_id": HELD, "force": True}, "force"),
    # negative numbers
    case("units-negative", RESERVE_PATH, units(output_tokens=-1), "units.output_tokens"),
    case("ttl-negative", RESERVE_PATH, edit(RESERVE, ttl_ms=-1), "ttl_ms"),
    case("ttl-zero", RESERVE_PATH, edit(RESERVE, ttl_ms=0), "ttl_ms"),
    case("amount-negative", RESERVE_PATH, edit(BY_AMOUNT, amount="-1"), "amount"),
    case(
        "commit-units-negative",
        COMMIT_PATH,
        {"reservation_id": HELD, "units": {"input_tokens": -5}},
        "units.input_tokens",
    ),
    case(
        "commit-amount-negative", COMMIT_PATH, {"reservation_id": HELD, "amount": "-0.1"}, "amount"
    ),
    # absurd numbers
    case("units-too-many", RESERVE_PATH, units(input_tokens=10**12 + 1), "units.input_tokens"),
    case("units-beyond-int64", RESERVE_PATH, units(input_tokens=10**30), "units.input_tokens"),
    case("ttl-too-long", RESERVE_PATH, edit(RESERVE, ttl_ms=86_400_001), "ttl_ms"),
    case(
        "amount-too-large", RESERVE_PATH, edit(BY_AMOUNT, amount="1000000000.000000001"), "amount"
    ),
    case(
        "commit-units-too-many",
        COMMIT_PATH,
        {"reservation_id": HELD, "units": {"output_tokens": 10**13}},
        "units.output_tokens",
    ),
    case(
        "commit-amount-too-large",
        COMMIT_PATH,
        {"reservation_id": HELD, "amount": "1000000001"},
        "amount",
    ),
    case(
        "too-many-tags", RESERVE_PATH, edit(RESERVE, tags={f"t{i}": "v" for i in range(17)}), "tags"
    ),
    # amounts finer than a nano-credit, or not decimals
    case("amount-10-digits", RESERVE_PATH, edit(BY_AMOUNT, amount="0.0000000001"), "amount"),
    case(
        "commit-amount-10-digits",
        COMMIT_PATH,
        {"reservation_id": HELD, "amount": "0.0003642001"},
        "amount",
    ),
    case("amount-exponent", RESERVE_PATH, edit(BY_AMOUNT, amount="1e3"), "amount"),
    case("amount-empty", RESERVE_PATH, edit(BY_AMOUNT, amount=""), "amount"),
    # bad ids and keys
    case("team-space", RESERVE_PATH, edit(RESERVE, team="a b"), "team"),
    case("user-empty", RESERVE_PATH, edit(RESERVE, user=""), "user"),
    case("agent-too-long", RESERVE_PATH, edit(RESERVE, agent="a" * 129), "agent"),
    case("session-leading-dash", RESERVE_PATH, edit(RESERVE, session="-s"), "session"),
    case("customer-key-injection", RESERVE_PATH, edit(RESERVE, customer="acme}:x"), "customer"),
    case("key-space", RESERVE_PATH, edit(RESERVE, idempotency_key="req 1"), "idempotency_key"),
    case("key-empty", RESERVE_PATH, edit(RESERVE, idempotency_key=""), "idempotency_key"),
    case("key-too-long", RESERVE_PATH, edit(RESERVE, idempotency_key="k" * 201), "idempotency_key"),
    case(
        "config-feature-reserved",
        RESERVE_PATH,
        edit(RESERVE, feature="max_context_tokens", model=MISSING, units=MISSING),
        "feature",
    ),
    case("check-team-space", CHECK_PATH, edit(CHECK, team="a b"), "team"),
    case("check-customer-slash", CHECK_PATH, edit(CHECK, customer="acme/eng"), "customer"),
    case("balance-customer-space", "/v1/balance?customer=a%20b", None, "customer", method="GET"),
    case("budgets-team-space", "/v1/budgets?customer=acme&team=a%20b", None, "team", method="GET"),
    case(
        "budgets-session-bad",
        "/v1/budgets?customer=acme&session=%7Bx%7D",
        None,
        "session",
        method="GET",
    ),
    # unknown objects
    case(
        "commit-unknown-rid",
        COMMIT_PATH,
        {"reservation_id": UNKNOWN_RID, "units": {"input_tokens": 1}},
        "reservation_id",
        status=404,
    ),
    case(
        "commit-garbage-rid",
        COMMIT_PATH,
        {"reservation_id": "garbage"},
        "reservation_id",
        status=404,
    ),
    case(
        "commit-other-customer",
        COMMIT_PATH,
        {"reservation_id": UNKNOWN_RID.replace("acme", "globex")},
        "reservation_id",
        status=404,
    ),
    case(
        "release-unknown-rid",
        RELEASE_PATH,
        {"reservation_id": UNKNOWN_RID},
        "reservation_id",
        status=404,
    ),
    case(
        "release-garbage-rid",
        RELEASE_PATH,
        {"reservation_id": "r_" + "Z" * 26 + "_"},
        "reservation_id",
        status=404,
    ),
    case(
        "balance-unknown-customer",
        "/v1/balance?customer=nobody",
        None,
        "customer",
        status=404,
        method="GET",
    ),
    # bodies nested past any request's shape, refused before any recursive work
    case(
        "deep-unknown-field",
        RESERVE_PATH,
        b'{"customer":"acme","feature":"chat","idempotency_key":"k","zz":'
        + b"[" * 1000
        + b"]" * 1000
        + b"}",
        "body",
    ),
    case(
        "deep-known-field",
        RESERVE_PATH,
        b'{"customer":"acme","feature":"chat","idempotency_key":"k","tags":{"a":'
        + b"[" * 5000
        + b"]" * 5000
        + b"}}",
        "body",
    ),
    # transport
    case("oversized", RESERVE_PATH, edit(RESERVE, tags={"pad": "x" * 70_000}), "body", status=413),
    case("oversized-raw", COMMIT_PATH, b" " * 65_537, "body", status=413),
    case("wrong-method", RESERVE_PATH, None, "", status=405, method="GET"),
    case("wrong-method-balance", "/v1/balance?customer=acme", {}, "", status=405),
]

ADMIN = "/admin/v1/customers/acme"
GRANT: dict[str, Any] = {"credit_type": "paid", "amount": "5", "idempotency_key": "g-bad"}
BUDGET: dict[str, Any] = {"scope": {"team": "eng"}, "period": "month", "limit": "10"}
ADMIN_CASES = [
    case("unknown-plan", ADMIN, {"plan": "gold"}, "plan", method="PUT"),
    case("plan-int", ADMIN, {"plan": 1}, "plan", method="PUT"),
    case("no-plan", ADMIN, {}, "plan", method="PUT"),
    case("upsert-unknown-field", ADMIN, {"plan": "pro", "tier": "x"}, "tier", method="PUT"),
    case(
        "overrides-unknown-field",
        ADMIN,
        {"plan": "pro", "overrides": {"discount": "1"}},
        "overrides.discount",
        method="PUT",
    ),
    case(
        "overrides-limit-above-int64",
        ADMIN,
        {"plan": "pro", "overrides": {"limits": {"chat": 2**64}}},
        "overrides.limits.chat",
        method="PUT",
    ),
    case(
        "customer-path-bad", "/admin/v1/customers/a%20b", {"plan": "pro"}, "customer", method="PUT"
    ),
    case("upsert-array", ADMIN, b'["pro"]', "body", method="PUT"),
    case("upsert-malformed", ADMIN, b"{plan: pro}", "body", method="PUT"),
    case("unknown-credit-type", f"{ADMIN}/grants", edit(GRANT, credit_type="gold"), "credit_type"),
    case(
        "grant-expired",
        f"{ADMIN}/grants",
        edit(GRANT, expires_at="2020-01-01T00:00:00Z"),
        "expires_at",
    ),
    case(
        "grant-no-zone",
        f"{ADMIN}/grants",
        edit(GRANT, expires_at="2099-01-01T00:00:00"),
        "expires_at",
    ),
    case("grant-not-a-time", f"{ADMIN}/grants", edit(GRANT, expires_at="tomorrow"), "expires_at"),
    case("grant-zero", f"{ADMIN}/grants", edit(GRANT, amount="0"), "amount"),
    case("grant-10-digits", f"{ADMIN}/grants", edit(GRANT, amount="1.0000000001"), "amount"),
    case("grant-too-large", f"{ADMIN}/grants", edit(GRANT, amount="1000000001"), "amount"),
    case("grant-amount-number", f"{ADMIN}/grants", edit(GRANT, amount=5), "amount"),
    case("grant-priority", f"{ADMIN}/grants", edit(GRANT, priority=-1), "priority"),
    case(
        "grant-no-key", f"{ADMIN}/grants", edit(GRANT, idempotency_key=MISSING), "idempotency_key"
    ),
    case("grant-bad-key", f"{ADMIN}/grants", edit(GRANT, idempotency_key="g 1"), "idempotency_key"),
    case(
        "grant-unknown-customer", "/admin/v1/customers/nobody/grants", GRANT, "customer", status=404
    ),
    case(
        "budget-two-nodes",
        f"{ADMIN}/budgets",
        edit(BUDGET, scope={"team": "eng", "user": "u-1"}),
        "scope",
        method="PUT",
    ),
    case(
        "budget-unknown-node",
        f"{ADMIN}/budgets",
        edit(BUDGET, scope={"org": "x"}),
        "scope.org",
        method="PUT",
    ),
    case(
        "budget-bad-team",
        f"{ADMIN}/budgets",
        edit(BUDGET, scope={"team": "a b"}),
        "scope.team",
        method="PUT",
    ),
    case("budget-period", f"{ADMIN}/budgets", edit(BUDGET, period="week"), "period", method="PUT"),
    case("budget-mode", f"{ADMIN}/budgets", edit(BUDGET, mode="strict"), "mode", method="PUT"),
    case(
        "budget-session-month",
        f"{ADMIN}/budgets",
        edit(BUDGET, scope={"session": "s-1"}),
        "period",
        method="PUT",
    ),
    case("budget-negative", f"{ADMIN}/budgets", edit(BUDGET, limit="-10"), "limit", method="PUT"),
    case("budget-no-limit", f"{ADMIN}/budgets", edit(BUDGET, limit=MISSING), "limit", method="PUT"),
    case(
        "budget-unknown-customer",
        "/admin/v1/customers/nobody/budgets",
        BUDGET,
        "customer",
        status=404,
        method="PUT",
    ),
    case(
        "admin-unknown-customer",
        "/admin/v1/customers/nobody",
        None,
        "customer",
        status=404,
        method="GET",
    ),
    case(
        "admin-oversized",
        f"{ADMIN}/grants",
        edit(GRANT, idempotency_key="k" * 70_000),
        "body",
        status=413,
    ),
    case("admin-wrong-method", ADMIN, None, "", status=405, method="DELETE"),
]


@pytest.fixture
async def held(api: Api) -> str:
    """acme on pro with paid credits and budgets, and one reservation in flight."""
    await api.seed(
        grants={"paid": "100"},
        budgets=[{"limit": "3000"}, {"scope": {"team": "eng"}, "period": "month", "limit": "500"}],
    )
    answer = await api.ok("/v1/reserve", edit(RESERVE, idempotency_key="held-1"))
    assert answer["allowed"] is True
    return str(answer["reservation_id"])


def _fill(body: Any, rid: str) -> Any:
    if isinstance(body, dict):
        return {key: _fill(value, rid) for key, value in body.items()}
    return rid if body == HELD else body


def _check_error(answer: Answer, status: int, field: str) -> None:
    code = CODES[status]
    assert answer.status == status, answer.body
    assert set(answer.body) == {"error"}, answer.body
    error = answer.body["error"]
    assert set(error) == {"code", "field", "message"}, error
    assert (error["code"], error["field"]) == (code, field), error
    assert isinstance(error["message"], str)
    assert error["message"].strip(), error


async def test_the_bases_are_valid_and_moves_are_seen(
    api: Api, store: RedisStore, held: str
) -> None:
    """Each bad case below differs from a request that succeeds in one respect only, and the
    "nothing moved" comparison does see a move when one happens."""
    assert (await api.ok("/v1/check", CHECK))["allowed"] is True
    moves = [
        ("/v1/reserve", RESERVE, "allowed", True),
        ("/v1/reserve", edit(BY_AMOUNT, amount="1"), "allowed", True),
        ("/v1/commit", {"reservation_id": held, "amount": "0.0003642"}, "result", "committed"),
    ]
    for path, body, key, expected in moves:
        before = await state(api, store)
        assert (await api.ok(path, body))[key] == expected
        assert await state(api, store) != before
    before = await state(api, store)
    assert (await api.admin_ok("POST", f"{ADMIN}/grants", GRANT))["result"] == "granted"
    assert (after := await state(api, store)) != before
    assert after.events == before.events + 2  # the grant, and its audit entry
    assert (await api.admin_ok("PUT", f"{ADMIN}/budgets", BUDGET))["scope"] == "team:eng"
    assert await state(api, store) != after


@pytest.mark.parametrize(("method", "path", "body", "status", "field"), CASES)
async def test_bad_input_is_refused_and_moves_nothing(
    api: Api,
    store: RedisStore,
    held: str,
    method: str,
    path: str,
    body: Any,
    status: int,
    field: str,
) -> None:
    before = await state(api, store)
    raw = body if isinstance(body, bytes) else None
    json_body = None if raw is not None else _fill(body, held)
    answer = await api.request(method, api.base + path, json_body, data=raw)
    _check_error(answer, status, field)
    assert await state(api, store) == before
    # The reservation in flight is still whole: its hold is exactly what it was.
    assert before.balance["held"] == "0.000660000"


@pytest.mark.parametrize(("method", "path", "body", "status", "field"), ADMIN_CASES)
async def test_bad_admin_input_is_refused_and_moves_nothing(
    api: Api,
    store: RedisStore,
    held: str,
    method: str,
    path: str,
    body: Any,
    status: int,
    field: str,
) -> None:
    before = await state(api, store)
    raw = body if isinstance(body, bytes) else None
    answer = await api.admin(method, path, None if raw is not None else body, data=raw)
    _check_error(answer, status, field)
    assert await state(api, store) == before


async def test_bad_input_for_an_unknown_customer_is_still_a_400(api: Api) -> None:
    for path, body, field in (
        (
            "/v1/reserve",
            {
                "customer": "nobody",
                "feature": "chat",
                "idempotency_key": "k",
                "units": {"input_tokens": -1},
            },
            "units.input_tokens",
        ),
        (
            "/v1/reserve",
            {"customer": "nobody", "feature": "chat", "idempotency_key": "k", "ttl_ms": 0},
            "ttl_ms",
        ),
        ("/v1/check", {"customer": "nobody", "feature": "chat", "team": "a b"}, "team"),
    ):
        answer = await api.post(path, body)
        assert (answer.status, answer.body["error"]["field"]) == (400, field)
