"""Every admin route refuses a missing token (401) and a wrong one (403), and moves nothing."""

from __future__ import annotations

from typing import Any

import pytest

from sidecar.store.redis_store import RedisStore
from tests.http.conftest import ADMIN_TOKEN, Api, state

pytestmark = pytest.mark.redis

BASE = "/admin/v1/customers/acme"
ROUTES: list[tuple[str, str, Any]] = [
    ("PUT", BASE, {"plan": "enterprise"}),
    ("GET", BASE, None),
    ("POST", f"{BASE}/grants", {"credit_type": "paid", "amount": "5", "idempotency_key": "g"}),
    ("PUT", f"{BASE}/budgets", {"scope": {"team": "eng"}, "limit": "1"}),
    ("PUT", "/admin/v1/customers/newco", {"plan": "pro"}),
]
# (id, Authorization header or None for none, status, code)
CREDENTIALS: list[tuple[str, str | None, int, str]] = [
    ("none", None, 401, "unauthenticated"),
    ("empty", "", 401, "unauthenticated"),
    ("bearer-without-token", "Bearer ", 401, "unauthenticated"),
    ("basic-scheme", f"Basic {ADMIN_TOKEN}", 401, "unauthenticated"),
    ("bare-token", ADMIN_TOKEN, 401, "unauthenticated"),
    ("wrong", "Bearer " + "u" * 32, 403, "permission_denied"),
    ("prefix", f"Bearer {ADMIN_TOKEN[:-1]}", 403, "permission_denied"),
    ("longer", f"Bearer {ADMIN_TOKEN}x", 403, "permission_denied"),
    ("case", f"Bearer {ADMIN_TOKEN.upper()}", 403, "permission_denied"),
]


@pytest.mark.parametrize(
    ("authorization", "status", "code"),
    [case[1:] for case in CREDENTIALS],
    ids=[case[0] for case in CREDENTIALS],
)
async def test_admin_routes_refuse_bad_credentials_and_move_nothing(
    api: Api, store: RedisStore, authorization: str | None, status: int, code: str
) -> None:
    await api.seed(plan="free", grants={"paid": "1"})
    before = await state(api, store)
    for method, path, body in ROUTES:
        if authorization is None:
            answer = await api.admin(method, path, body, token=None)
        else:
            answer = await api.admin(method, path, body, authorization=authorization)
        assert answer.status == status, (method, path, answer.body)
        error = answer.body["error"]
        assert (error["code"], error["field"]) == (code, "Authorization"), (method, path, error)
        assert error["message"].strip()
        assert "balance" not in answer.body  # a refused GET reveals no state
    assert await state(api, store) == before
    assert await store.client.exists(store.layout.customer_key("newco")) == 0


async def test_the_right_token_opens_every_route(api: Api, store: RedisStore) -> None:
    """Control: the same calls with the right token are accepted and do move state."""
    await api.seed(plan="free", grants={"paid": "1"})
    before = await state(api, store)
    for method, path, body in ROUTES:
        answer = await api.admin(method, path, body)
        assert answer.status == 200, (method, path, answer.body)
    after = await state(api, store)
    assert after.balance["plan"] == "enterprise"
    assert after.events > before.events
    assert await store.client.exists(store.layout.customer_key("newco")) == 1
