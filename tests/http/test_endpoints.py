"""Every public endpoint's happy path over HTTP, field names and amounts as docs/design.md
fixes them."""

from __future__ import annotations

import asyncio
import re
from decimal import Decimal

import pytest

from sidecar.store.redis_store import RedisStore
from tests.http.conftest import CATALOG, EVENTS, Api, cost, credits, month_end_iso, text

pytestmark = pytest.mark.redis

MODEL = "gpt-4o-mini"
WORST = {"input_tokens": 1200, "output_tokens": 800}
ACTUAL = {"input_tokens": 1180, "output_tokens": 312}
PAID, CUSTOMER_BUDGET, TEAM_BUDGET = Decimal(100), Decimal(3000), Decimal(500)
# Plan pro issues a monthly `included` grant when the customer is created.
INCLUDED = Decimal(CATALOG["plans"]["pro"]["grants"][0]["amount"])
SESSION_BUDGET = Decimal(CATALOG["plans"]["pro"]["session_budget"])
CHAT_LIMIT = CATALOG["plans"]["pro"]["features"]["chat"]["limit"]


def _reserve(key: str, **extra: object) -> dict[str, object]:
    return {
        "customer": "acme", "team": "eng", "user": "u-17", "agent": "researcher",
        "session": "run-8841", "feature": "chat", "model": MODEL, "units": WORST,
        "idempotency_key": key, "tags": {"workflow": "summarize"}, **extra,
    }  # fmt: skip


@pytest.fixture
async def acme(api: Api) -> None:
    await api.seed(
        grants={"paid": str(PAID)},
        budgets=[
            {"limit": str(CUSTOMER_BUDGET)},
            {"scope": {"team": "eng"}, "period": "month", "limit": str(TEAM_BUDGET)},
        ],
    )


async def test_health_and_readiness(api: Api) -> None:
    assert await api.ok("/healthz") == {"status": "ok"}
    ready = await api.ok("/readyz")
    assert ready == {"status": "ready", "catalog_version": api.sidecar.service.catalog.version}
    assert re.fullmatch(r"[0-9a-f]{6,64}", ready["catalog_version"])


@pytest.mark.usefixtures("acme")
async def test_check_answers_config_values_and_metered_remaining(api: Api) -> None:
    version = (await api.ok("/readyz"))["catalog_version"]
    context = await api.ok("/v1/check", {"customer": "acme", "feature": "max_context_tokens"})
    assert context == {
        "allowed": True,
        "reason": "ok",
        "value": CATALOG["plans"]["pro"]["features"]["max_context_tokens"]["value"],
        "remaining": None,
        "catalog_version": version,
        "decided_by": "store",
    }
    chat = await api.ok("/v1/check", {"customer": "acme", "feature": "chat", "model": MODEL})
    assert chat == {
        "allowed": True,
        "reason": "ok",
        "value": None,
        "remaining": CHAT_LIMIT,
        "catalog_version": version,
        "decided_by": "store",
    }
    # Held tokens count against the quota at once; check itself moves nothing.
    await api.ok("/v1/reserve", _reserve("q-1"))
    chat = await api.ok("/v1/check", {"customer": "acme", "feature": "chat", "team": "eng"})
    assert chat["remaining"] == CHAT_LIMIT - sum(WORST.values())
    again = await api.ok("/v1/check", {"customer": "acme", "feature": "chat", "team": "eng"})
    assert again == chat


@pytest.mark.usefixtures("acme")
async def test_reserve_commit_and_a_second_commit(api: Api, store: RedisStore) -> None:
    hold = cost(MODEL, WORST)
    assert credits(hold) == "0.000660000"
    version = (await api.ok("/readyz"))["catalog_version"]
    events_before = await store.client.xlen(EVENTS)

    reserved = await api.ok("/v1/reserve", _reserve("req-5f2c"))
    rid = reserved.pop("reservation_id")
    assert re.fullmatch(r"r_[0-9A-HJKMNP-TV-Z]{26}_acme", rid)
    assert reserved == {
        "allowed": True,
        "reason": "ok",
        "held": credits(hold),
        "remaining": {
            "balance": credits(INCLUDED + PAID - hold),
            "customer": credits(CUSTOMER_BUDGET - hold),
            "team": credits(TEAM_BUDGET - hold),
            "session": credits(SESSION_BUDGET - hold),
        },
        "soft_limits_hit": [],
        "catalog_version": version,
        "decided_by": "store",
        "scope": None,
    }
    # A retry of the same reserve returns the first answer and holds nothing twice.
    retried = await api.ok("/v1/reserve", _reserve("req-5f2c"))
    assert retried == {**reserved, "reservation_id": rid}
    assert (await api.ok("/v1/balance?customer=acme"))["held"] == credits(hold)

    included_id = next(
        bucket["grant_id"]
        for bucket in (await api.ok("/v1/balance?customer=acme"))["buckets"]
        if bucket["credit_type"] == "included"
    )
    actual = cost(MODEL, ACTUAL)
    committed = await api.ok("/v1/commit", {"reservation_id": rid, "units": ACTUAL})
    first = {
        "cost": credits(actual),
        "overrun": credits(0),
        "overage": credits(0),  # deprecated: the overrun's name until 0.2
        "released": credits(hold - actual),
        "uncovered": credits(0),
        # included (priority 5) burns before paid (priority 10).
        "burned": [{"grant_id": included_id, "credit_type": "included", "amount": credits(actual)}],
        "catalog_version": version,
        "decided_by": "store",
    }
    assert committed == {"result": "committed", **first}
    assert credits(actual) == "0.000364200"

    # A second commit, even with other units, answers the first amounts and moves nothing.
    balance = await api.ok("/v1/balance?customer=acme")
    again = await api.ok("/v1/commit", {"reservation_id": rid, "units": WORST})
    assert again == {"result": "already_committed", **first}
    assert await api.ok("/v1/balance?customer=acme") == balance
    assert await store.client.xlen(EVENTS) == events_before + 1

    # The consumption event is attributed (invariant 5).
    [(_, event)] = list(await store.client.xrevrange(EVENTS, count=1) or [])
    assert event is not None
    fields = {text(key): text(value) for key, value in event.items()}
    assert fields["kind"] == "debit"
    assert fields["event_id"] == rid
    assert fields["request_id"] == "req-5f2c"
    assert (fields["customer"], fields["team"], fields["user"]) == ("acme", "eng", "u-17")
    assert (fields["agent"], fields["session"]) == ("researcher", "run-8841")
    assert (fields["feature"], fields["model"]) == ("chat", MODEL)
    assert fields["cost"] == str(int(actual * 10**9))
    assert fields["catalog_version"] == version

    assert balance == {
        "customer": "acme",
        "plan": "pro",
        "balance": credits(INCLUDED + PAID - actual),
        "held": credits(0),
        "buckets": [
            {
                "grant_id": included_id,
                "credit_type": "included",
                "amount": credits(INCLUDED - actual),
                "priority": CATALOG["credit_types"]["included"]["priority"],
                "expires_at": month_end_iso(),
            },
            {
                "grant_id": balance["buckets"][1]["grant_id"],
                "credit_type": "paid",
                "amount": credits(PAID),
                "priority": CATALOG["credit_types"]["paid"]["priority"],
                "expires_at": None,
            },
        ],
        "budgets": [
            {
                "scope": "customer",
                "period": "month",
                "limit": credits(CUSTOMER_BUDGET),
                "mode": "hard",
                "used": credits(actual),
                "held": credits(0),
                "remaining": credits(CUSTOMER_BUDGET - actual),
            },
            {
                "scope": "team:eng",
                "period": "month",
                "limit": credits(TEAM_BUDGET),
                "mode": "hard",
                "used": credits(actual),
                "held": credits(0),
                "remaining": credits(TEAM_BUDGET - actual),
            },
        ],
        "uncovered_used": credits(0),
        "overage_used": credits(0),  # deprecated: uncovered_used's name until 0.2
    }
    budgets = await api.ok("/v1/budgets?customer=acme&team=eng")
    assert budgets == {"customer": "acme", "budgets": balance["budgets"]}
    # A team the budgets do not name sees only the customer's own budget.
    other = await api.ok("/v1/budgets?customer=acme&team=sales")
    assert other == {"customer": "acme", "budgets": balance["budgets"][:1]}
    # The admin view of the customer is the same state.
    assert await api.admin_ok("GET", "/admin/v1/customers/acme") == balance


@pytest.mark.usefixtures("acme")
async def test_release_answers_each_outcome(api: Api) -> None:
    hold = cost(MODEL, WORST)
    committed = (await api.ok("/v1/reserve", _reserve("r-committed")))["reservation_id"]
    await api.ok("/v1/commit", {"reservation_id": committed, "units": ACTUAL})
    rid = (await api.ok("/v1/reserve", _reserve("r-released")))["reservation_id"]
    assert (await api.ok("/v1/balance?customer=acme"))["held"] == credits(hold)

    released = await api.ok("/v1/release", {"reservation_id": rid})
    assert released == {"result": "released", "released": credits(hold), "decided_by": "store"}
    balance = await api.ok("/v1/balance?customer=acme")
    assert balance["held"] == credits(0)
    assert balance["balance"] == credits(INCLUDED + PAID - cost(MODEL, ACTUAL))

    again = await api.ok("/v1/release", {"reservation_id": rid})
    assert again == {"result": "already_released", "released": credits(0), "decided_by": "store"}
    late = await api.ok("/v1/release", {"reservation_id": committed})
    assert late == {"result": "already_committed", "released": credits(0), "decided_by": "store"}
    commit_released = await api.ok("/v1/commit", {"reservation_id": rid, "units": ACTUAL})
    assert commit_released["result"] == "already_released"
    assert commit_released["cost"] == credits(0)

    short = (await api.ok("/v1/reserve", _reserve("r-expired", ttl_ms=1)))["reservation_id"]
    await asyncio.sleep(0.05)
    expired = await api.ok("/v1/release", {"reservation_id": short})
    assert expired == {"result": "expired", "released": credits(0), "decided_by": "store"}
    assert await api.ok("/v1/balance?customer=acme") == balance


@pytest.mark.usefixtures("acme")
async def test_amount_reservations_and_denials_are_200(api: Api) -> None:
    held = await api.ok(
        "/v1/reserve",
        {"customer": "acme", "feature": "chat", "amount": "12.5", "idempotency_key": "a-1"},
    )
    assert held["allowed"] is True
    assert held["held"] == "12.500000000"
    assert held["remaining"] == {
        "balance": credits(INCLUDED + PAID - Decimal("12.5")),
        "customer": credits(CUSTOMER_BUDGET - Decimal("12.5")),
    }
    committed = await api.ok(
        "/v1/commit", {"reservation_id": held["reservation_id"], "amount": "13.000000001"}
    )
    assert committed["cost"] == "13.000000001"
    assert committed["overrun"] == "0.500000001"  # charged above the hold, never dropped
    assert committed["overage"] == committed["overrun"]  # its deprecated name, until 0.3
    assert committed["released"] == credits(0)

    denied = await api.post(
        "/v1/reserve",
        {"customer": "acme", "feature": "chat", "model": "claude-sonnet-4",
         "idempotency_key": "a-2"},
    )  # fmt: skip
    assert denied.status == 200
    assert denied.body["allowed"] is False
    assert denied.body["reason"] == "model_not_allowed"
    assert denied.body["reservation_id"] is None
    nobody = await api.ok("/v1/check", {"customer": "nobody", "feature": "chat"})
    assert (nobody["allowed"], nobody["reason"]) == (False, "unknown_customer")
