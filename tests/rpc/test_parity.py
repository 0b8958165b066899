"""HTTP and gRPC are one service: the same operations on two mirrored customers of ONE sidecar,
``acme-http`` driven by HttpClient and ``acme-grpc`` by GrpcClient (each created through its own
transport's admin operations), give equal answers field by field, ids aside.

Parity alone would pass if both transports were wrong the same way, so every scenario also
asserts the expected answers, computed here with Decimal from the catalog as written.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import aiohttp
import grpc
import msgspec
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from sidecar.catalog.spec import ContractSpec
from sidecar.client import GrpcClient, HttpClient
from sidecar.errors import InvalidInput, NotFound, RequestError
from sidecar.rpc.gen.creditgate.v1 import creditgate_pb2 as pb
from sidecar.server import Sidecar
from sidecar.wire import (
    BudgetScope,
    CheckRequest,
    CommitRequest,
    GrantRequest,
    ReleaseRequest,
    ReserveRequest,
    SetBudgetRequest,
    UpsertCustomerRequest,
)
from tests.rpc.conftest import (
    ADMIN_TOKEN,
    AUTH,
    CATALOG,
    Clients,
    Stubs,
    cost,
    credits,
    plan_grant,
)

pytestmark = pytest.mark.redis

Client = HttpClient | GrpcClient
MODEL = "gpt-4o-mini"
WORST = {"input_tokens": 1200, "output_tokens": 800}
HOLD = cost(MODEL, WORST)  # 0.00066 credits
PAID = Decimal(5)
INCLUDED = plan_grant("pro")
PROMO = plan_grant("free")
# Budgets every default customer gets; one of each kind of node and mode.
BUDGETS = [
    SetBudgetRequest(limit="100"),  # customer, month, hard
    SetBudgetRequest(scope=BudgetScope(team="eng"), limit="0.05"),
    SetBudgetRequest(scope=BudgetScope(user="u-1"), limit="0.0005", mode="soft"),
    SetBudgetRequest(scope=BudgetScope(session="s-2"), period="lifetime", limit="0.001"),
]


def month_id() -> str:
    return datetime.now(UTC).strftime("m%Y%m")


async def same_minute(margin_s: float = 3.0) -> None:
    """Wait for a fresh minute when this one is about to end: rate limits count per minute."""
    left = 60 - time.time() % 60
    if left < margin_s:
        await asyncio.sleep(left + 0.05)


@dataclass
class Log:
    """One transport's run of a scenario: every answer (or error) in order, by label."""

    client: Client
    customer: str
    entries: list[tuple[str, Any]] = field(default_factory=list)

    async def __call__(self, label: str, call: Awaitable[Any]) -> Any:
        try:
            answer = await call
        except RequestError as error:
            self.entries.append((label, error))
            return error
        self.entries.append((label, answer))
        return answer

    def reserve(self, label: str, **fields: Any) -> Awaitable[Any]:
        fields.setdefault("customer", self.customer)
        fields.setdefault("idempotency_key", label.replace(" ", "-"))
        return self(label, self.client.reserve(ReserveRequest(**fields)))

    def check(self, label: str, **fields: Any) -> Awaitable[Any]:
        fields.setdefault("customer", self.customer)
        return self(label, self.client.check(CheckRequest(**fields)))

    def commit(self, label: str, rid: str, **fields: Any) -> Awaitable[Any]:
        return self(label, self.client.commit(CommitRequest(reservation_id=rid, **fields)))

    def release(self, label: str, rid: str) -> Awaitable[Any]:
        return self(label, self.client.release(ReleaseRequest(reservation_id=rid)))

    def balance(self, label: str) -> Awaitable[Any]:
        return self(label, self.client.balance(self.customer))

    async def setup(
        self,
        *,
        plan: str = "pro",
        grants: dict[str, str] | None = None,
        budgets: list[SetBudgetRequest] | None = None,
        overrides: ContractSpec | None = None,
    ) -> None:
        """Create the customer through this transport's own admin operations."""
        c, me = self.client, self.customer
        up = await self("upsert", c.upsert_customer(me, UpsertCustomerRequest(plan, overrides)))
        assert (up.customer, up.plan, up.result) == (me, plan, "upserted")
        for credit_type, amount in ({"paid": str(PAID)} if grants is None else grants).items():
            request = GrantRequest(credit_type, amount, f"seed-{credit_type}")
            granted = await self(f"grant {credit_type}", c.grant(me, request))
            assert (granted.result, granted.amount) == ("granted", credits(amount))
        for i, budget in enumerate(BUDGETS if budgets is None else budgets):
            await self(f"budget {i}", c.set_budget(me, budget))


IDS = ("reservation_id", "grant_id")


def normalize(log: Log) -> list[tuple[str, Any]]:
    """The log as plain data: ids replaced by their order of appearance, the customer's name by
    a placeholder, errors by their class and field (``amount_nanos`` read as ``amount``)."""
    seen: dict[str, str] = {}

    def walk(value: Any, key: str = "") -> Any:
        if isinstance(value, dict):
            return {k: walk(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, key) for v in value]
        if isinstance(value, str):
            if key in IDS:
                return seen.setdefault(value, f"<{key} {len(seen)}>")
            return value.replace(log.customer, "<customer>")
        return value

    out = []
    for label, answer in log.entries:
        if isinstance(answer, RequestError):
            plain: Any = ("error", type(answer).__name__, answer.field.removesuffix("_nanos"))
        else:
            plain = (type(answer).__name__, walk(msgspec.to_builtins(answer)))
        out.append((label, plain))
    return out


# ------------------------------------------------------------------------------ scenarios


async def checks(log: Log) -> None:
    await log.setup()
    config = await log.check("config", feature="max_context_tokens")
    assert (config.allowed, config.reason, config.value, config.remaining) == (
        True, "ok", CATALOG["plans"]["pro"]["features"]["max_context_tokens"]["value"], None,
    )  # fmt: skip
    limit = CATALOG["plans"]["pro"]["features"]["chat"]["limit"]
    metered = await log.check("metered", feature="chat", model="gpt-4o", team="eng")
    assert (metered.allowed, metered.reason, metered.remaining) == (True, "ok", limit)
    assert metered.value is None
    for label, fields, reason in [
        ("not entitled", {"feature": "sso"}, "feature_not_entitled"),
        ("model", {"feature": "chat", "model": "claude-sonnet-4"}, "model_not_allowed"),
        ("unknown feature", {"feature": "image_gen"}, "unknown_feature"),
        ("unknown customer", {"feature": "chat", "customer": "ghost"}, "unknown_customer"),
    ]:
        answer = await log.check(label, **fields)
        assert (answer.allowed, answer.reason, answer.value, answer.remaining) == (
            False, reason, None, None,
        )  # fmt: skip
        assert answer.catalog_version == config.catalog_version != ""
    # A hold counts against the quota at once; a check never moves anything itself.
    await log.reserve("reserve", feature="chat", model=MODEL, units=WORST)
    after = await log.check("metered after hold", feature="chat")
    assert after.remaining == limit - sum(WORST.values())
    again = await log.check("metered again", feature="chat")
    assert again.remaining == after.remaining


async def reserve_allowed(log: Log) -> None:
    await log.setup()
    ok = await log.reserve(
        "tokens", feature="chat", model=MODEL, units=WORST, team="eng", user="u-1",
        agent="researcher", session="s-1", ttl_ms=120_000, tags={"workflow": "summarize"},
    )  # fmt: skip
    assert (ok.allowed, ok.reason, ok.scope) == (True, "ok", None)
    assert ok.reservation_id.startswith("r_")
    assert ok.reservation_id.endswith(f"_{log.customer}")
    assert ok.held == credits(HOLD)
    session_default = Decimal(CATALOG["plans"]["pro"]["session_budget"])
    assert ok.remaining == {
        "balance": credits(INCLUDED + PAID - HOLD),
        "customer": credits(100 - HOLD),
        "team": credits(Decimal("0.05") - HOLD),
        "user": credits(Decimal("0.0005") - HOLD),  # a soft budget may go negative
        "session": credits(session_default - HOLD),
    }
    assert ok.remaining["user"].startswith("-")
    assert ok.soft_limits_hit == ["user:u-1/month"]
    by_amount = await log.reserve("amount", feature="chat", amount="0.01", team="eng")
    assert (by_amount.allowed, by_amount.held) == (True, credits("0.01"))
    assert by_amount.soft_limits_hit == []
    assert by_amount.remaining["team"] == credits(Decimal("0.05") - HOLD - Decimal("0.01"))
    outcome = await log.reserve("outcome", feature="support_agent", units={"tickets_resolved": 2})
    tickets = Decimal(CATALOG["outcomes"]["tickets_resolved"]["price"]) * 2
    assert (outcome.allowed, outcome.held) == (True, credits(tickets))

    held = HOLD + Decimal("0.01") + tickets
    state = await log.balance("balance")
    assert (state.customer, state.plan) == (log.customer, "pro")
    assert (state.held, state.balance) == (credits(held), credits(INCLUDED + PAID - held))
    assert state.uncovered_used == credits(0)
    assert [(b.credit_type, b.amount, b.priority) for b in state.buckets] == [
        ("included", credits(INCLUDED), 5),
        ("paid", credits(PAID), 10),
    ]
    rows = {(b.scope, b.period): b for b in state.budgets}
    assert set(rows) == {
        ("customer", "month"), ("team:eng", "month"), ("user:u-1", "month"),
        ("session:s-2", "lifetime"),
    }  # fmt: skip
    team = rows["team:eng", "month"]
    assert (team.limit, team.mode, team.used, team.held, team.remaining) == (
        credits("0.05"), "hard", credits(0), credits(HOLD + Decimal("0.01")),
        credits(Decimal("0.05") - HOLD - Decimal("0.01")),
    )  # fmt: skip
    path = await log("budgets of a path", log.client.budgets(log.customer, team="eng", user="u-1"))
    assert [(b.scope, b.period) for b in path.budgets] == [
        ("customer", "month"), ("team:eng", "month"), ("user:u-1", "month"),
    ]  # fmt: skip
    session = await log("budgets of a session", log.client.budgets(log.customer, session="s-2"))
    assert [(b.scope, b.held) for b in session.budgets] == [
        ("customer", credits(held)), ("session:s-2", credits(0)),
    ]  # fmt: skip


async def reserve_denied(log: Log) -> None:
    await log.setup()
    before = await log.balance("before")
    cases: list[tuple[str, dict[str, Any], str, str]] = [
        ("team budget", {"amount": "0.06", "team": "eng"}, "budget_exceeded", "team:eng/month"),
        ("customer budget", {"amount": "100.000000001"}, "budget_exceeded", "customer/month"),
        ("session budget", {"amount": "0.002", "session": "s-2"},
         "session_budget_exceeded", "session:s-2/lifetime"),
        # pro's default session budget (5 credits) applies to a session without its own.
        ("plan session budget", {"amount": "5.000000001", "session": "s-3"},
         "session_budget_exceeded", "session:s-3/lifetime"),
        ("credits", {"amount": str(INCLUDED + PAID + Decimal("0.000000001"))},
         "insufficient_credits", "balance"),
        ("quota", {"feature": "support_agent", "units": {"tickets_resolved": 501}},
         "quota_exceeded", f"feature:support_agent/{month_id()}"),
    ]  # fmt: skip
    for label, fields, reason, scope in cases:
        no = await log.reserve(label, **({"feature": "chat"} | fields))
        assert (no.allowed, no.reason, no.scope) == (False, reason, scope), label
        assert (no.reservation_id, no.held, no.remaining, no.soft_limits_hit) == (
            None, credits(0), {}, [],
        )  # fmt: skip
    for label, fields, reason in [
        ("local model", {"feature": "chat", "model": "claude-sonnet-4"}, "model_not_allowed"),
        ("local feature", {"feature": "sso"}, "feature_not_entitled"),
        ("local unknown", {"feature": "image_gen"}, "unknown_feature"),
        ("customer", {"feature": "chat", "customer": "ghost"}, "unknown_customer"),
    ]:
        no = await log.reserve(label, amount="0.01", **fields)
        assert (no.allowed, no.reason, no.scope, no.reservation_id) == (False, reason, None, None)
    # The exact edge fits: a hold of all of the team budget is allowed.
    edge = await log.reserve("edge", feature="chat", amount="0.05", team="eng")
    assert (edge.allowed, edge.remaining["team"]) == (True, credits(0))
    await log.release("release edge", edge.reservation_id)
    assert await log.balance("after") == before


async def rate_limited(log: Log) -> None:
    await log.setup(plan="free", grants={}, budgets=[])
    rpm = CATALOG["plans"]["free"]["rate_limits"][0]["requests_per_minute"]
    tpm = CATALOG["plans"]["free"]["rate_limits"][0]["tokens_per_minute"]
    await same_minute()
    for i in range(rpm):
        ok = await log.reserve(f"call {i}", feature="chat", amount="0.001", user="u-rl")
        assert ok.allowed, ok
    no = await log.reserve("one too many", feature="chat", amount="0.001", user="u-rl")
    assert (no.allowed, no.reason, no.scope) == (
        False, "rate_limited", "user:u-rl/requests_per_minute",
    )  # fmt: skip
    other = await log.reserve("other user", feature="chat", amount="0.001", user="u-2")
    assert other.allowed
    no_user = await log.reserve("no user", feature="chat", amount="0.001")
    assert no_user.allowed  # free limits users only
    tokens = await log.reserve(
        "tokens", feature="chat", model=MODEL, units={"input_tokens": tpm + 1}, user="u-3"
    )
    assert (tokens.allowed, tokens.reason, tokens.scope) == (
        False, "rate_limited", "user:u-3/tokens_per_minute",
    )  # fmt: skip
    state = await log.balance("balance")
    held = Decimal("0.001") * (rpm + 2)
    assert (state.held, state.balance) == (credits(held), credits(PROMO - held))


async def idempotent_retry(log: Log) -> None:
    await log.setup()
    first = await log.reserve("first", feature="chat", model=MODEL, units=WORST, team="eng")
    again = await log.reserve(
        "again", feature="chat", model=MODEL, units=WORST, team="eng", idempotency_key="first"
    )
    assert again == first
    # A retry returns the first answer even when the body changed.
    changed = await log.reserve("changed", feature="chat", amount="3", idempotency_key="first")
    assert changed == first
    denied = await log.reserve("denied", feature="chat", amount="26")
    assert (denied.allowed, denied.reason) == (False, "insufficient_credits")
    await log("top up", log.client.grant(log.customer, GrantRequest("paid", "10", "top-up")))
    # A denial moved nothing and is not kept: the retry is decided again, and now fits.
    retried = await log.reserve(
        "denied again", feature="chat", amount="26", idempotency_key="denied"
    )
    assert (retried.allowed, retried.held) == (True, credits(26))
    state = await log.balance("balance")
    assert state.held == credits(HOLD + 26)
    assert state.balance == credits(INCLUDED + PAID + 10 - HOLD - 26)


async def commits(log: Log) -> None:
    await log.setup()
    r1 = await log.reserve("r1", feature="chat", model=MODEL, units=WORST, team="eng")
    actual = {"input_tokens": 1000, "output_tokens": 300}
    c1 = cost(MODEL, actual)
    done = await log.commit("commit r1", r1.reservation_id, units=actual)
    assert (done.result, done.cost, done.overrun, done.released, done.uncovered) == (
        "committed", credits(c1), credits(0), credits(HOLD - c1), credits(0),
    )  # fmt: skip
    assert [(b.credit_type, b.amount) for b in done.burned] == [("included", credits(c1))]
    assert done.catalog_version == r1.catalog_version
    twice = await log.commit("commit r1 again", r1.reservation_id, units={"input_tokens": 5})
    assert twice.result == "already_committed"
    assert msgspec.structs.replace(twice, result="committed") == done

    r2 = await log.reserve("r2", feature="chat", model=MODEL, units={"input_tokens": 100})
    small = cost(MODEL, {"input_tokens": 100})
    c2 = cost(MODEL, {"output_tokens": 1000})
    over = await log.commit("commit r2 over", r2.reservation_id, units={"output_tokens": 1000})
    assert (over.result, over.cost, over.overrun, over.released, over.uncovered) == (
        "committed", credits(c2), credits(c2 - small), credits(0), credits(0),
    )  # fmt: skip

    r3 = await log.reserve("r3", feature="chat", amount="0.01", team="eng")
    zero = await log.commit("commit r3 zero", r3.reservation_id, amount="0")
    assert (zero.cost, zero.released, zero.burned) == (credits(0), credits("0.01"), [])

    r4 = await log.reserve("r4", feature="chat", amount="0.01")
    await log.release("release r4", r4.reservation_id)
    late = await log.commit("commit r4 released", r4.reservation_id, amount="0.01")
    assert (late.result, late.cost, late.burned) == ("already_released", credits(0), [])

    state = await log.balance("balance")
    spent = c1 + c2
    assert (state.held, state.balance) == (credits(0), credits(INCLUDED + PAID - spent))
    assert [(b.credit_type, b.amount) for b in state.buckets] == [
        ("included", credits(INCLUDED - spent)), ("paid", credits(PAID)),
    ]  # fmt: skip
    team = next(b for b in state.budgets if b.scope == "team:eng")
    assert (team.used, team.held) == (credits(c1), credits(0))
    customer = next(b for b in state.budgets if b.scope == "customer")
    assert (customer.used, customer.held) == (credits(spent), credits(0))
    # The quota counts what the commits consumed (1300 + 1000 tokens), not what was held.
    check = await log.check("quota used", feature="chat")
    limit = CATALOG["plans"]["pro"]["features"]["chat"]["limit"]
    assert check.remaining == limit - sum(actual.values()) - 1000


async def commit_uncovered(log: Log) -> None:
    """free: one promo credit and no overage room; a commit past it is charged anyway."""
    await log.setup(plan="free", grants={}, budgets=[])
    held = await log.reserve("reserve", feature="chat", amount="0.5")
    assert held.allowed
    done = await log.commit("commit", held.reservation_id, amount="1.2")
    assert (done.result, done.cost, done.overrun, done.released, done.uncovered) == (
        "committed", credits("1.2"), credits("0.7"), credits(0),
        credits(Decimal("1.2") - PROMO),
    )  # fmt: skip
    assert [(b.credit_type, b.amount) for b in done.burned] == [("promo", credits(PROMO))]
    state = await log.balance("balance")
    assert (state.balance, state.held, state.buckets) == (credits(0), credits(0), [])
    assert state.uncovered_used == state.overage_used == credits(Decimal("1.2") - PROMO)
    no = await log.reserve("after", feature="chat", amount="0.000000001")
    assert (no.allowed, no.reason) == (False, "insufficient_credits")


async def releases(log: Log) -> None:
    await log.setup()
    r1 = await log.reserve("r1", feature="chat", model=MODEL, units=WORST, team="eng")
    freed = await log.release("release", r1.reservation_id)
    assert (freed.result, freed.released) == ("released", credits(HOLD))
    again = await log.release("release again", r1.reservation_id)
    assert (again.result, again.released) == ("already_released", credits(0))
    r2 = await log.reserve("r2", feature="chat", amount="0.02", team="eng")
    await log.commit("commit r2", r2.reservation_id, amount="0.015")
    late = await log.release("release committed", r2.reservation_id)
    assert (late.result, late.released) == ("already_committed", credits(0))
    r3 = await log.reserve("r3", feature="chat", amount="0.03", team="eng", ttl_ms=1)
    assert r3.allowed
    await asyncio.sleep(0.02)
    expired = await log.release("release expired", r3.reservation_id)
    assert (expired.result, expired.released) == ("expired", credits(0))
    state = await log.balance("balance")
    assert (state.held, state.balance) == (
        credits(0), credits(INCLUDED + PAID - Decimal("0.015")),
    )  # fmt: skip
    team = next(b for b in state.budgets if b.scope == "team:eng")
    assert (team.used, team.held) == (credits("0.015"), credits(0))


async def grants(log: Log) -> None:
    await log.setup(grants={}, budgets=[])
    c, me = log.client, log.customer
    request = GrantRequest("paid", "2.5", "g-1", priority=2, expires_at="2099-01-01T00:00:00Z")
    first = await log("grant", c.grant(me, request))
    assert (first.result, first.credit_type, first.amount, first.priority, first.expires_at) == (
        "granted", "paid", credits("2.5"), 2, "2099-01-01T00:00:00.000Z",
    )  # fmt: skip
    again = await log("grant again", c.grant(me, GrantRequest("paid", "7", "g-1")))
    assert (again.result, again.grant_id) == ("already_granted", first.grant_id)
    default = await log("default priority", c.grant(me, GrantRequest("frontier", "1", "g-2")))
    frontier = CATALOG["credit_types"]["frontier"]["priority"]
    assert (default.priority, default.expires_at) == (frontier, None)
    state = await log.balance("balance")
    assert [(b.credit_type, b.amount, b.priority) for b in state.buckets] == [
        ("paid", credits("2.5"), 2), ("frontier", credits(1), frontier),
        ("included", credits(INCLUDED), 5),
    ]  # fmt: skip
    assert state.balance == credits(INCLUDED + Decimal("3.5"))
    # frontier credits pay for the frontier models only.
    mini = await log.reserve("mini", feature="chat", amount=str(INCLUDED + Decimal("2.5") + 1))
    assert (mini.allowed, mini.reason) == (False, "insufficient_credits")
    big = await log.reserve(
        "gpt-4o", feature="chat", model="gpt-4o", amount=str(INCLUDED + Decimal("2.5") + 1)
    )
    assert big.allowed


async def budgets(log: Log) -> None:
    await log.setup(budgets=[])
    c, me = log.client, log.customer
    for label, request, expected in [
        ("customer", SetBudgetRequest(limit="3"), ("customer", "month", credits(3), "hard")),
        ("team day soft", SetBudgetRequest(scope=BudgetScope(team="eng"), period="day",
         limit="1.5", mode="soft"), ("team:eng", "day", credits("1.5"), "soft")),
        ("agent zero", SetBudgetRequest(scope=BudgetScope(agent="a-1"), limit="0"),
         ("agent:a-1", "month", credits(0), "hard")),
        ("session", SetBudgetRequest(scope=BudgetScope(session="s-9"), period="lifetime",
         limit="0.2"), ("session:s-9", "lifetime", credits("0.2"), "hard")),
        ("customer again", SetBudgetRequest(limit="3"), ("customer", "month", credits(3), "hard")),
        ("user lifetime", SetBudgetRequest(scope=BudgetScope(user="u-1"), period="lifetime",
         limit="12.345678901"), ("user:u-1", "lifetime", credits("12.345678901"), "hard")),
    ]:  # fmt: skip
        answer = await log(label, c.set_budget(me, request))
        assert (answer.scope, answer.period, answer.limit, answer.mode) == expected
    no = await log.reserve("agent capped", feature="chat", amount="0.000000001", agent="a-1")
    assert (no.allowed, no.reason, no.scope) == (False, "budget_exceeded", "agent:a-1/month")
    soft = await log.reserve("team soft", feature="chat", amount="2", team="eng")
    assert (soft.allowed, soft.soft_limits_hit) == (True, ["team:eng/day"])
    assert soft.remaining["team"] == credits(Decimal("1.5") - 2)
    hard = await log.reserve("customer hard", feature="chat", amount="1.000000001", team="eng")
    assert (hard.allowed, hard.reason, hard.scope) == (False, "budget_exceeded", "customer/month")
    everything = await log("all budgets", c.budgets(me))
    assert [(b.scope, b.period) for b in everything.budgets] == sorted(
        [("customer", "month"), ("team:eng", "day"), ("agent:a-1", "month"),
         ("session:s-9", "lifetime"), ("user:u-1", "lifetime")],
        key=lambda row: f"{row[0]}|{row[1]}",
    )  # fmt: skip
    team = await log("team budgets", c.budgets(me, team="eng"))
    rows = {b.scope: b for b in team.budgets}
    assert set(rows) == {"customer", "team:eng"}
    assert rows["team:eng"].remaining == credits(Decimal("1.5") - 2)
    assert rows["customer"].remaining == credits(1)


async def overrides(log: Log) -> None:
    contract = ContractSpec(
        prices_per_million={MODEL: {"output_tokens": "0.30"}},
        prices={"llama-3.1-8b": {"requests": "0.0002"}},
        outcome_prices={"tickets_resolved": "0.5"},
        limits={"chat": 5000},
    )
    await log.setup(overrides=contract, budgets=[])
    ok = await log.reserve("tokens", feature="chat", model=MODEL, units=WORST)
    expected = (
        WORST["input_tokens"] * price_of(MODEL, "input_tokens")
        + WORST["output_tokens"] * Decimal("0.30") / 10**6
    )
    assert ok.held == credits(expected)
    check = await log.check("quota", feature="chat")
    assert check.remaining == 5000 - sum(WORST.values())
    request = await log.reserve(
        "requests", feature="chat", model="llama-3.1-8b", units={"requests": 3}
    )
    assert request.held == credits(Decimal("0.0002") * 3)
    tickets = await log.reserve("tickets", feature="support_agent", units={"tickets_resolved": 3})
    assert tickets.held == credits("1.5")
    too_many = await log.reserve(
        "over quota", feature="chat", model=MODEL, units={"input_tokens": 3001}
    )
    assert (too_many.allowed, too_many.reason) == (False, "quota_exceeded")


def price_of(model: str, kind: str) -> Decimal:
    return Decimal(CATALOG["models"][model]["prices_per_million"][kind]) / 10**6


Scenario = Callable[[Log], Awaitable[None]]
SCENARIOS: list[Scenario] = [
    checks, reserve_allowed, reserve_denied, rate_limited, idempotent_retry, commits,
    commit_uncovered, releases, grants, budgets, overrides,
]  # fmt: skip


async def run_both(clients: Clients, scenario: Scenario) -> tuple[Log, Log]:
    http = Log(clients.http, "acme-http")
    await scenario(http)
    grpc_log = Log(clients.grpc, "acme-grpc")
    await scenario(grpc_log)
    return http, grpc_log


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__.replace("_", "-"))
async def test_both_transports_answer_alike(clients: Clients, scenario: Scenario) -> None:
    http, grpc_log = await run_both(clients, scenario)
    left, right = normalize(http), normalize(grpc_log)
    assert [label for label, _ in left] == [label for label, _ in right]
    assert len(left) >= 5
    for (label, a), (_, b) in zip(left, right, strict=True):
        assert a == b, label
    # The two customers really are two: neither run touched the other's state.
    mine = await clients.http.balance("acme-http")
    theirs = await clients.grpc.balance("acme-grpc")
    assert (mine.customer, theirs.customer) == ("acme-http", "acme-grpc")


# ------------------------------------------------------------------------ errors parity

Call = Callable[[Client, str], Awaitable[Any]]


def _reserve(**fields: Any) -> Call:
    def call(client: Client, customer: str) -> Awaitable[Any]:
        body = {"customer": customer, "feature": "chat", "idempotency_key": "bad"} | fields
        return client.reserve(ReserveRequest(**body))

    return call


RID = "r_01ARZ3NDEKTSV4RRFFQ69G5FAV_{customer}"
TOKENS = {"model": MODEL, "units": WORST}
ERRORS: list[Any] = [
    pytest.param(_reserve(customer=""), InvalidInput, "customer", id="empty-customer"),
    pytest.param(_reserve(feature=""), InvalidInput, "feature", id="empty-feature"),
    pytest.param(_reserve(idempotency_key=""), InvalidInput, "idempotency_key", id="empty-key"),
    pytest.param(_reserve(idempotency_key="a b"), InvalidInput, "idempotency_key", id="key-space"),
    pytest.param(_reserve(customer="acme}x"), InvalidInput, "customer", id="customer-injection"),
    pytest.param(_reserve(team="a b"), InvalidInput, "team", id="team-space"),
    pytest.param(
        _reserve(model=MODEL, units={"input_tokens": -1}), InvalidInput, "units.input_tokens",
        id="units-negative",
    ),
    pytest.param(
        _reserve(model=MODEL, units={"output_tokens": 10**12 + 1}), InvalidInput,
        "units.output_tokens", id="units-too-many",
    ),
    pytest.param(
        _reserve(model=MODEL, units={"pages": 1}), InvalidInput, "units.pages",
        id="unknown-unit-kind",
    ),
    pytest.param(_reserve(units={"input_tokens": 5}), InvalidInput, "model", id="no-model"),
    pytest.param(_reserve(**TOKENS, ttl_ms=0), InvalidInput, "ttl_ms", id="ttl-zero"),
    pytest.param(_reserve(**TOKENS, ttl_ms=86_400_001), InvalidInput, "ttl_ms", id="ttl-long"),
    pytest.param(_reserve(**TOKENS, ttl_ms=-5), InvalidInput, "ttl_ms", id="ttl-negative"),
    pytest.param(_reserve(amount="-1"), InvalidInput, "amount", id="amount-negative"),
    pytest.param(
        _reserve(amount="1000000000.000000001"), InvalidInput, "amount", id="amount-too-large"
    ),
    # Malformed decimals are refused by GrpcClient itself before it sends (the proto carries
    # integers); the class and field are still the ones HTTP answers.
    pytest.param(_reserve(amount="1e3"), InvalidInput, "amount", id="amount-exponent"),
    pytest.param(_reserve(amount="0.0000000001"), InvalidInput, "amount", id="amount-10-digits"),
    pytest.param(
        _reserve(tags={f"t{i}": "v" for i in range(17)}), InvalidInput, "tags", id="many-tags"
    ),
    pytest.param(_reserve(tags={"": "v"}), InvalidInput, "tags.", id="empty-tag-key"),
    pytest.param(
        _reserve(feature="max_context_tokens"), InvalidInput, "feature", id="config-reserved"
    ),
    pytest.param(
        lambda c, me: c.check(CheckRequest(customer=me, feature="chat", user="-u")),
        InvalidInput, "user", id="check-bad-user",
    ),
    pytest.param(
        lambda c, me: c.check(CheckRequest(customer=me, feature="")),
        InvalidInput, "feature", id="check-empty-feature",
    ),
    pytest.param(
        lambda c, me: c.commit(CommitRequest(reservation_id=RID.format(customer=me))),
        NotFound, "reservation_id", id="commit-unknown",
    ),
    pytest.param(
        lambda c, me: c.commit(CommitRequest(reservation_id="garbage")),
        NotFound, "reservation_id", id="commit-garbage",
    ),
    pytest.param(
        lambda c, me: c.release(ReleaseRequest(reservation_id=RID.format(customer=me))),
        NotFound, "reservation_id", id="release-unknown",
    ),
    pytest.param(
        lambda c, me: c.commit(CommitRequest(reservation_id="HELD", amount="-0.1")),
        InvalidInput, "amount", id="commit-amount-negative",
    ),
    pytest.param(
        lambda c, me: c.commit(CommitRequest(reservation_id="HELD", units={"pages": 1})),
        InvalidInput, "units.pages", id="commit-unknown-unit",
    ),
    pytest.param(lambda c, me: c.balance("ghost"), NotFound, "customer", id="balance-unknown"),
    pytest.param(lambda c, me: c.balance(""), InvalidInput, "customer", id="balance-empty"),
    pytest.param(
        lambda c, me: c.budgets(me, team="a.b@c", session="{x}"),
        InvalidInput, "session", id="budgets-bad-session",
    ),
    pytest.param(
        lambda c, me: c.grant(me, GrantRequest("paid", "0", "g")),
        InvalidInput, "amount", id="grant-zero",
    ),
    pytest.param(
        lambda c, me: c.grant(me, GrantRequest("gold", "1", "g")),
        InvalidInput, "credit_type", id="grant-credit-type",
    ),
    pytest.param(
        lambda c, me: c.grant(me, GrantRequest("paid", "1", "g", expires_at="2001-01-01T00:00Z")),
        InvalidInput, "expires_at", id="grant-expired",
    ),
    pytest.param(
        lambda c, me: c.grant(me, GrantRequest("paid", "1", "g", expires_at="2099-01-01")),
        InvalidInput, "expires_at", id="grant-no-zone",
    ),
    pytest.param(
        lambda c, me: c.grant(me, GrantRequest("paid", "1", "g", priority=10**6)),
        InvalidInput, "priority", id="grant-priority",
    ),
    pytest.param(
        lambda c, me: c.grant(me, GrantRequest("paid", "1", "g k")),
        InvalidInput, "idempotency_key", id="grant-key",
    ),
    pytest.param(
        lambda c, me: c.grant("ghost", GrantRequest("paid", "1", "g")),
        NotFound, "customer", id="grant-unknown-customer",
    ),
    pytest.param(
        lambda c, me: c.set_budget(me, SetBudgetRequest(limit="-1")),
        InvalidInput, "limit", id="budget-negative",
    ),
    pytest.param(
        lambda c, me: c.set_budget(
            me, SetBudgetRequest(scope=BudgetScope(team="eng", user="u"), limit="1")
        ),
        InvalidInput, "scope", id="budget-two-nodes",
    ),
    pytest.param(
        lambda c, me: c.set_budget(me, SetBudgetRequest(scope=BudgetScope(session="s"), limit="1")),
        InvalidInput, "period", id="budget-session-month",
    ),
    pytest.param(
        lambda c, me: c.set_budget(me, SetBudgetRequest(scope=BudgetScope(team="a b"), limit="1")),
        InvalidInput, "scope.team", id="budget-bad-team",
    ),
    pytest.param(
        lambda c, me: c.set_budget("ghost", SetBudgetRequest(limit="1")),
        NotFound, "customer", id="budget-unknown-customer",
    ),
    pytest.param(
        lambda c, me: c.upsert_customer(me, UpsertCustomerRequest("gold")),
        InvalidInput, "plan", id="upsert-plan",
    ),
    pytest.param(
        lambda c, me: c.upsert_customer("-acme", UpsertCustomerRequest("pro")),
        InvalidInput, "customer", id="upsert-bad-id",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("call", "kind", "field"), ERRORS)
async def test_the_same_bad_input_gets_the_same_error(
    clients: Clients, call: Call, kind: type[RequestError], field: str
) -> None:
    errors: dict[str, RequestError] = {}
    for name, client in (("http", clients.http), ("grpc", clients.grpc)):
        me = f"acme-{name}"
        log = Log(client, me)
        await log.setup()
        held = await log.reserve("held", feature="chat", amount="0.01")
        before = await client.balance(me)
        with pytest.raises(RequestError) as caught:
            await _with_held(call, client, me, held.reservation_id)
        errors[name] = caught.value
        assert await client.balance(me) == before, "a refused request moved something"
    http, grpc_error = errors["http"], errors["grpc"]
    assert type(http) is type(grpc_error) is kind, (http, grpc_error)
    assert http.field == field, http
    assert grpc_error.field in (field, f"{field}_nanos"), grpc_error
    assert grpc_error.field.removesuffix("_nanos") == http.field
    assert http.message.strip()
    assert grpc_error.message.strip()


async def _with_held(call: Call, client: Client, customer: str, rid: str) -> Any:
    """Run ``call``; a CommitRequest naming ``HELD`` is sent for the held reservation."""
    original_commit = client.commit

    async def commit(request: CommitRequest) -> Any:
        if request.reservation_id == "HELD":
            request = msgspec.structs.replace(request, reservation_id=rid)
        return await original_commit(request)

    client.commit = commit  # type: ignore[method-assign]
    try:
        return await call(client, customer)
    finally:
        del client.commit


async def test_an_empty_required_string_is_missing_over_both(clients: Clients) -> None:
    """proto3 cannot send "" apart from absent, so gRPC reports an empty required string as
    missing; HTTP says the same (it used to deny unknown_feature for "" and 404 for "")."""
    calls: list[tuple[str, Callable[[Client], Awaitable[Any]]]] = [
        ("reservation_id", lambda c: c.commit(CommitRequest(""))),
        ("reservation_id", lambda c: c.release(ReleaseRequest(""))),
        ("feature", lambda c: c.check(CheckRequest(customer="acme", feature=""))),
        ("feature", lambda c: c.check(CheckRequest(customer="ghost", feature=""))),
        ("feature", lambda c: c.reserve(ReserveRequest(customer="ghost", feature="",
                                                      idempotency_key="k"))),
    ]  # fmt: skip
    await clients.http.upsert_customer("acme", UpsertCustomerRequest("pro"))
    for name, call in calls:
        for client in (clients.http, clients.grpc):
            with pytest.raises(InvalidInput) as caught:
                await call(client)
            assert (caught.value.field, caught.value.message) == (name, "is required")


# A missing required field, sent raw: JSON without the key, and a proto message without it.
MISSING: list[Any] = [
    pytest.param("/v1/reserve", {"feature": "chat", "idempotency_key": "k"},
                 "Reserve", pb.ReserveRequest(feature="chat", idempotency_key="k"),
                 "customer", id="reserve-customer"),
    pytest.param("/v1/reserve", {"customer": "acme", "idempotency_key": "k"},
                 "Reserve", pb.ReserveRequest(customer="acme", idempotency_key="k"),
                 "feature", id="reserve-feature"),
    pytest.param("/v1/reserve", {"customer": "acme", "feature": "chat"},
                 "Reserve", pb.ReserveRequest(customer="acme", feature="chat"),
                 "idempotency_key", id="reserve-key"),
    pytest.param("/v1/check", {"customer": "acme"}, "Check", pb.CheckRequest(customer="acme"),
                 "feature", id="check-feature"),
    pytest.param("/v1/check", {"feature": "chat"}, "Check", pb.CheckRequest(feature="chat"),
                 "customer", id="check-customer"),
    pytest.param("/v1/commit", {}, "Commit", pb.CommitRequest(), "reservation_id",
                 id="commit-rid"),
    pytest.param("/v1/release", {}, "Release", pb.ReleaseRequest(), "reservation_id",
                 id="release-rid"),
]  # fmt: skip
ADMIN_MISSING: list[Any] = [
    pytest.param("PUT", "", {}, "UpsertCustomer", pb.UpsertCustomerRequest(customer="acme"),
                 "plan", id="upsert-plan"),
    pytest.param("POST", "/grants", {"amount": "1", "idempotency_key": "g"}, "Grant",
                 pb.GrantRequest(customer="acme", amount_nanos=10**9, idempotency_key="g"),
                 "credit_type", id="grant-credit-type"),
    pytest.param("POST", "/grants", {"credit_type": "paid", "amount": "1"}, "Grant",
                 pb.GrantRequest(customer="acme", credit_type="paid", amount_nanos=10**9),
                 "idempotency_key", id="grant-key"),
    # An int64 cannot be absent in proto3: a missing amount is 0, refused as "must be above 0".
    pytest.param("POST", "/grants", {"credit_type": "paid", "idempotency_key": "g"}, "Grant",
                 pb.GrantRequest(customer="acme", credit_type="paid", idempotency_key="g"),
                 "amount", id="grant-amount"),
]  # fmt: skip


def _grpc_field(error: grpc.aio.AioRpcError) -> str:
    status = rpc_status.from_call(error)
    assert status is not None
    [detail] = status.details
    bad = error_details_pb2.BadRequest()
    assert detail.Unpack(bad)
    [violation] = bad.field_violations
    return str(violation.field)


@pytest.mark.parametrize(("path", "body", "rpc", "message", "field"), MISSING)
async def test_a_missing_field_is_invalid_over_both(
    sidecar: Sidecar,
    stubs: Stubs,
    raw_http: aiohttp.ClientSession,
    path: str,
    body: dict[str, Any],
    rpc: str,
    message: Any,
    field: str,
) -> None:
    async with raw_http.post(f"http://127.0.0.1:{sidecar.port}{path}", json=body) as response:
        assert response.status == 400
        error = (await response.json())["error"]
    assert (error["code"], error["field"]) == ("invalid_request", field)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await getattr(stubs.public, rpc)(message, timeout=5)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _grpc_field(caught.value) == field


@pytest.mark.parametrize(("method", "tail", "body", "rpc", "message", "field"), ADMIN_MISSING)
async def test_a_missing_admin_field_is_invalid_over_both(
    sidecar: Sidecar,
    stubs: Stubs,
    raw_http: aiohttp.ClientSession,
    grpc_client: GrpcClient,
    method: str,
    tail: str,
    body: dict[str, Any],
    rpc: str,
    message: Any,
    field: str,
) -> None:
    await grpc_client.upsert_customer("acme", UpsertCustomerRequest("pro"))
    url = f"http://127.0.0.1:{sidecar.admin_port}/admin/v1/customers/acme{tail}"
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with raw_http.request(method, url, json=body, headers=headers) as response:
        assert response.status == 400
        error = (await response.json())["error"]
    assert (error["code"], error["field"]) == ("invalid_request", field)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await getattr(stubs.admin, rpc)(message, timeout=5, metadata=AUTH)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _grpc_field(caught.value).removesuffix("_nanos") == field


async def test_a_missing_budget_limit_is_invalid_over_both(
    sidecar: Sidecar, stubs: Stubs, raw_http: aiohttp.ClientSession, grpc_client: GrpcClient
) -> None:
    await grpc_client.upsert_customer("acme", UpsertCustomerRequest("pro"))
    url = f"http://127.0.0.1:{sidecar.admin_port}/admin/v1/customers/acme/budgets"
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with raw_http.put(url, json={}, headers=headers) as response:
        assert response.status == 400
        assert (await response.json())["error"]["field"] == "limit"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stubs.admin.SetBudget(pb.SetBudgetRequest(customer="acme"), timeout=5, metadata=AUTH)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
