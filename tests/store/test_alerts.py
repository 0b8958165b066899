"""Threshold alerts, decided by the commit that crosses them: once per threshold and period
however many commits race, again in a new period; balance thresholds again after a top-up;
the customer's own rule in place of the plan's."""

from __future__ import annotations

import asyncio

import pytest

from sidecar.errors import InvalidInput
from sidecar.service import Service
from sidecar.store.redis_store import RedisStore
from sidecar.wire import (
    BudgetScope,
    CommitRequest,
    GrantRequest,
    ReserveRequest,
    SetAlertsRequest,
    SetBudgetRequest,
)
from tests.conftest import Clock, Setup, stream_events

pytestmark = pytest.mark.redis

COST = 750_000
"""Nanos of one call: 1000 input and 1000 output tokens of small."""
DAY_MS = 86_400_000


async def _call(service: Service, key: str, team: str = "eng") -> None:
    units = {"input_tokens": 1000, "output_tokens": 1000}
    held = await service.reserve(
        ReserveRequest(customer="acme", feature="chat", model="small", units=units,
                       idempotency_key=key, team=team)
    )  # fmt: skip
    assert held.allowed, held
    done = await service.commit(
        CommitRequest(reservation_id=held.reservation_id or "", units=units)
    )
    assert done.result == "committed"


async def test_500_concurrent_commits_fire_each_threshold_once_and_again_next_period(
    sidecars: list[Service], store: RedisStore, setup_customer: Setup, clock: Clock
) -> None:
    await setup_customer(plan="alerted", grants={"paid": "10"})
    # A soft team budget of 0.3 credits: 400 calls reach it, 500 pass it (soft: none denied).
    soft = SetBudgetRequest(scope=BudgetScope(team="eng"), period="month", limit="0.3", mode="soft")
    await sidecars[0].set_budget("acme", soft)
    await asyncio.gather(*(_call(sidecars[i % 4], f"k{i}") for i in range(500)))
    fired = await stream_events(store, "alert")
    assert sorted(a["rule"] for a in fired) == ["p100", "p50", "p80"]  # the plan's defaults
    levels = {"p50": 150_000_000, "p80": 240_000_000, "p100": 300_000_000}
    for alert in fired:
        level, used = int(alert["threshold"]), int(alert["used"])
        assert level == levels[alert["rule"]]
        assert used - COST < level <= used  # fired by the commit that crossed it
        assert (alert["scope"], alert["period"], alert["limit"], alert["mode"], alert["team"]) == (
            "team:eng",
            "month",
            "300000000",
            "soft",
            "eng",
        )
    assert len({a["event_id"] for a in fired}) == 3
    clock.advance(31 * DAY_MS)  # the next month: a new period of the budget
    for i in range(201):  # 201 calls cross 50% of 0.3 again, not 80%
        await _call(sidecars[i % 4], f"next-{i}")
    assert [a["rule"] for a in (await stream_events(store, "alert"))[3:]] == ["p50"]


async def test_a_balance_threshold_fires_once_until_a_grant_lifts_the_balance_past_it(
    service: Service, store: RedisStore, setup_customer: Setup
) -> None:
    await setup_customer(plan="alerted", grants={"paid": "0.0026"})
    # The plan's balance rule is 0.9 and 0.5 credits: too large here, so set the customer's own.
    rule = SetAlertsRequest(target="balance", thresholds=["0.002", "0.0005"])
    assert (await service.set_alerts("acme", rule)).result == "set"
    assert (await service.set_alerts("acme", rule)).result == "unchanged"
    for i in range(3):  # 2.6 -> 1.85 -> 1.1 -> 0.35 milli-credits
        await _call(service, f"a{i}")
    fired = await stream_events(store, "alert")
    assert [(a["scope"], a["rule"], a["used"]) for a in fired] == [
        ("balance", "a2000000", "1850000"),
        ("balance", "a500000", "350000"),
    ]
    await service.grant(
        "acme", GrantRequest(credit_type="paid", amount="0.003", idempotency_key="t")
    )
    await _call(service, "b0")  # 3.35 -> 2.6: above both still
    await _call(service, "b1")  # 2.6 -> 1.85: crosses 2 again, and only 2
    assert [a["rule"] for a in (await stream_events(store, "alert"))[2:]] == ["a2000000"]


async def test_the_customers_own_rule_replaces_the_plans_default_on_that_budget(
    service: Service, store: RedisStore, setup_customer: Setup
) -> None:
    await setup_customer(plan="alerted", grants={"paid": "10"})
    for team in ("eng", "ops"):
        budget = SetBudgetRequest(
            scope=BudgetScope(team=team), period="day", limit="0.003", mode="soft"
        )
        await service.set_budget("acme", budget)
    own = SetAlertsRequest(scope=BudgetScope(team="ops"), period="day", thresholds=["25%", "0.002"])
    assert (await service.set_alerts("acme", own)).rule.thresholds == ["25%", "0.002000000"]
    for team in ("eng", "ops"):
        for i in range(2):  # 1.5 of 3 milli-credits: 50% of the budget
            await _call(service, f"{team}{i}", team=team)
    fired = {(a["scope"], a["rule"]) for a in await stream_events(store, "alert")}
    assert fired == {("team:eng", "p50"), ("team:ops", "p25")}
    rules = (await service.alerts("acme")).rules
    assert [(r.scope, r.period, r.source) for r in rules] == [
        ("team:ops", "day", "customer"),
        ("*", None, "plan"),
        ("balance", None, "plan"),
    ]
    removed = SetAlertsRequest(scope=BudgetScope(team="ops"), period="day", thresholds=[])
    assert (await service.set_alerts("acme", removed)).result == "removed"


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (SetAlertsRequest(thresholds=["80"]), None),
        (SetAlertsRequest(thresholds=["0%"]), "thresholds[0]"),
        (SetAlertsRequest(thresholds=["50%", "50%"]), "thresholds"),
        (SetAlertsRequest(thresholds=["x"]), "thresholds[0]"),
        (SetAlertsRequest(target="balance", thresholds=["10%"]), "thresholds[0]"),
        (SetAlertsRequest(target="balance", scope=BudgetScope(team="a"), thresholds=["1"]),
         "scope"),
        (SetAlertsRequest(scope=BudgetScope(team="a", user="b"), thresholds=["1"]), "scope"),
    ],
)  # fmt: skip
async def test_a_bad_rule_names_its_field_and_moves_nothing(
    service: Service, store: RedisStore, setup_customer: Setup,
    request_: SetAlertsRequest, field: str | None,
) -> None:  # fmt: skip
    await setup_customer(plan="alerted")
    before = await store.client.xlen(store.layout.stream_of("acme"))
    if field is None:  # a valid one, for contrast: it moves
        await service.set_alerts("acme", request_)
        assert await store.client.xlen(store.layout.stream_of("acme")) == before + 1
        return
    with pytest.raises(InvalidInput) as refused:
        await service.set_alerts("acme", request_)
    assert refused.value.field == field
    assert await store.alert_rules("acme") == {}
    assert await store.client.xlen(store.layout.stream_of("acme")) == before
