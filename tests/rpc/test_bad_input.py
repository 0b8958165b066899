"""Bad input over gRPC, with the raw generated stubs: the exact status, a google.rpc.BadRequest
detail naming the field, and nothing moved (acme's balance, buckets and budgets as GetBalance
shows them, and the length of its event stream)."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.rpc import code_pb2, error_details_pb2
from grpc_status import rpc_status

from sidecar.client import GrpcClient
from sidecar.rpc.gen.creditgate.v1 import creditgate_pb2 as pb
from sidecar.store.redis_store import RedisStore
from sidecar.wire import BudgetScope, ReserveRequest, SetBudgetRequest
from tests.rpc.conftest import AUTH, Stubs, seed, snapshot

pytestmark = pytest.mark.redis

INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND
HELD = "HELD"  # stands for the id of the reservation the fixture holds
UNKNOWN_RID = "r_01ARZ3NDEKTSV4RRFFQ69G5FAV_acme"
TOKENS: dict[str, Any] = {
    "customer": "acme", "team": "eng", "user": "u-1", "agent": "a-1", "session": "s-1",
    "feature": "chat", "model": "gpt-4o-mini",
    "units": {"input_tokens": 1200, "output_tokens": 800},
    "idempotency_key": "bad-1", "ttl_ms": 60_000, "tags": {"workflow": "summarize"},
}  # fmt: skip
BY_AMOUNT: dict[str, Any] = {
    "customer": "acme", "feature": "chat", "idempotency_key": "bad-2", "amount_nanos": 10**7,
}  # fmt: skip
MISSING = object()


def edit(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = {**base, **changes}
    return {key: value for key, value in out.items() if value is not MISSING}


def reserve(base: dict[str, Any] = TOKENS, **changes: Any) -> pb.ReserveRequest:
    return pb.ReserveRequest(**edit(base, **changes))


def units(**changes: Any) -> pb.ReserveRequest:
    return reserve(units=edit(TOKENS["units"], **changes))


def case(name: str, rpc: str, request: Any, field: str, code: Any = INVALID) -> Any:
    return pytest.param(rpc, request, code, field, id=name)


CASES = [
    # missing required fields (proto3: absent and "" are one)
    case("no-customer", "Reserve", reserve(customer=MISSING), "customer"),
    case("empty-customer", "Reserve", reserve(customer=""), "customer"),
    case("no-feature", "Reserve", reserve(feature=MISSING), "feature"),
    case("no-key", "Reserve", reserve(idempotency_key=MISSING), "idempotency_key"),
    case("check-no-customer", "Check", pb.CheckRequest(feature="chat"), "customer"),
    case("check-no-feature", "Check", pb.CheckRequest(customer="acme"), "feature"),
    case("commit-no-rid", "Commit", pb.CommitRequest(units={"input_tokens": 1}), "reservation_id"),
    case("release-no-rid", "Release", pb.ReleaseRequest(), "reservation_id"),
    case("balance-no-customer", "GetBalance", pb.GetBalanceRequest(), "customer"),
    case("budgets-no-customer", "GetBudgets", pb.GetBudgetsRequest(team="eng"), "customer"),
    case("tokens-without-model", "Reserve", reserve(model=MISSING), "model"),
    # out-of-range numbers
    case("units-too-many", "Reserve", units(input_tokens=10**12 + 1), "units.input_tokens"),
    case("units-int64-max", "Reserve", units(output_tokens=2**63 - 1), "units.output_tokens"),
    case("units-negative", "Reserve", units(output_tokens=-1), "units.output_tokens"),
    case("ttl-zero", "Reserve", reserve(ttl_ms=0), "ttl_ms"),
    case("ttl-negative", "Reserve", reserve(ttl_ms=-1), "ttl_ms"),
    case("ttl-too-long", "Reserve", reserve(ttl_ms=86_400_001), "ttl_ms"),
    case("amount-negative", "Reserve", reserve(BY_AMOUNT, amount_nanos=-1), "amount_nanos"),
    case("amount-too-large", "Reserve", reserve(BY_AMOUNT, amount_nanos=10**18 + 1),
         "amount_nanos"),
    case("commit-amount-negative", "Commit",
         pb.CommitRequest(reservation_id=HELD, amount_nanos=-5), "amount_nanos"),
    case("commit-units-negative", "Commit",
         pb.CommitRequest(reservation_id=HELD, units={"input_tokens": -5}), "units.input_tokens"),
    case("commit-units-too-many", "Commit",
         pb.CommitRequest(reservation_id=HELD, units={"output_tokens": 10**13}),
         "units.output_tokens"),
    # unknown unit kinds, and kinds the model has no price for
    case("unknown-unit-kind", "Reserve", units(image_tokens=5), "units.image_tokens"),
    case("unpriced-unit-kind", "Reserve",
         reserve(model="llama-3.1-8b", units={"cached_input_tokens": 5}),
         "units.cached_input_tokens"),
    case("commit-unknown-unit", "Commit",
         pb.CommitRequest(reservation_id=HELD, units={"pages": 1}), "units.pages"),
    # bad ids and keys
    case("customer-injection", "Reserve", reserve(customer="acme}:x"), "customer"),
    case("team-space", "Reserve", reserve(team="a b"), "team"),
    case("user-empty", "Reserve", reserve(user=""), "user"),  # optional: "" is present
    case("agent-too-long", "Reserve", reserve(agent="a" * 129), "agent"),
    case("session-leading-dash", "Reserve", reserve(session="-s"), "session"),
    case("key-space", "Reserve", reserve(idempotency_key="req 1"), "idempotency_key"),
    case("key-non-ascii", "Reserve", reserve(idempotency_key="r\u00e9q"), "idempotency_key"),
    case("key-too-long", "Reserve", reserve(idempotency_key="k" * 201), "idempotency_key"),
    case("check-team-space", "Check",
         pb.CheckRequest(customer="acme", feature="chat", team="a b"), "team"),
    case("balance-customer-space", "GetBalance", pb.GetBalanceRequest(customer="a b"),
         "customer"),
    case("budgets-team-empty", "GetBudgets", pb.GetBudgetsRequest(customer="acme", team=""),
         "team"),
    case("config-feature-reserved", "Reserve",
         reserve(feature="max_context_tokens", model=MISSING, units=MISSING), "feature"),
    # tags
    case("too-many-tags", "Reserve", reserve(tags={f"t{i}": "v" for i in range(17)}), "tags"),
    case("tag-value-too-long", "Reserve", reserve(tags={"w": "v" * 257}), "tags.w"),
    case("tag-key-empty", "Reserve", reserve(tags={"": "v"}), "tags."),
    case("tag-value-nul", "Reserve", reserve(tags={"w": "a\x00b"}), "tags.w"),
    # oversized, yet under gRPC's own 4 MiB cap: refused by the sidecar before anything else
    case("oversized-tags", "Reserve", reserve(tags={"pad": "x" * 70_000}), "request"),
    case("oversized-key", "Reserve", reserve(idempotency_key="k" * 1_000_000), "request"),
    case("oversized-commit", "Commit",
         pb.CommitRequest(reservation_id="r" * 70_000), "request"),
    # unknown objects
    case("commit-unknown-rid", "Commit",
         pb.CommitRequest(reservation_id=UNKNOWN_RID, units={"input_tokens": 1}),
         "reservation_id", NOT_FOUND),
    case("commit-garbage-rid", "Commit", pb.CommitRequest(reservation_id="garbage"),
         "reservation_id", NOT_FOUND),
    case("commit-other-customer", "Commit",
         pb.CommitRequest(reservation_id=UNKNOWN_RID.replace("acme", "globex")),
         "reservation_id", NOT_FOUND),
    case("release-unknown-rid", "Release", pb.ReleaseRequest(reservation_id=UNKNOWN_RID),
         "reservation_id", NOT_FOUND),
    case("release-garbage-rid", "Release", pb.ReleaseRequest(reservation_id="r_" + "Z" * 26 + "_"),
         "reservation_id", NOT_FOUND),
    case("balance-unknown-customer", "GetBalance", pb.GetBalanceRequest(customer="nobody"),
         "customer", NOT_FOUND),
    case("budgets-unknown-customer", "GetBudgets", pb.GetBudgetsRequest(customer="nobody"),
         "customer", NOT_FOUND),
]  # fmt: skip

GRANT: dict[str, Any] = {
    "customer": "acme", "credit_type": "paid", "amount_nanos": 5 * 10**9,
    "idempotency_key": "g-bad",
}  # fmt: skip


def grant(**changes: Any) -> pb.GrantRequest:
    return pb.GrantRequest(**edit(GRANT, **changes))


def budget(**changes: Any) -> pb.SetBudgetRequest:
    base = {"customer": "acme", "scope": pb.BudgetScope(team="eng"), "limit_nanos": 10**10}
    return pb.SetBudgetRequest(**edit(base, **changes))


ADMIN_CASES = [
    case("grant-amount-zero", "Grant", grant(amount_nanos=0), "amount_nanos"),
    case("grant-amount-negative", "Grant", grant(amount_nanos=-1), "amount_nanos"),
    case("grant-amount-too-large", "Grant", grant(amount_nanos=10**18 + 1), "amount_nanos"),
    case("grant-no-credit-type", "Grant", grant(credit_type=MISSING), "credit_type"),
    case("grant-unknown-credit-type", "Grant", grant(credit_type="gold"), "credit_type"),
    case("grant-no-key", "Grant", grant(idempotency_key=MISSING), "idempotency_key"),
    case("grant-key-space", "Grant", grant(idempotency_key="g 1"), "idempotency_key"),
    case("grant-expired", "Grant", grant(expires_at="2001-01-01T00:00:00Z"), "expires_at"),
    case("grant-no-zone", "Grant", grant(expires_at="2099-01-01T00:00:00"), "expires_at"),
    case("grant-expires-empty", "Grant", grant(expires_at=""), "expires_at"),
    case("grant-priority-negative", "Grant", grant(priority=-1), "priority"),
    case("grant-priority-too-large", "Grant", grant(priority=1_000_000), "priority"),
    case("grant-bad-customer", "Grant", grant(customer="a b"), "customer"),
    case("grant-unknown-customer", "Grant", grant(customer="nobody"), "customer", NOT_FOUND),
    case("grant-oversized", "Grant", grant(idempotency_key="g" * 100_000), "request"),
    case("budget-negative", "SetBudget", budget(limit_nanos=-1), "limit_nanos"),
    case("budget-too-large", "SetBudget", budget(limit_nanos=10**18 + 1), "limit_nanos"),
    case("budget-two-nodes", "SetBudget", budget(scope=pb.BudgetScope(team="eng", user="u")),
         "scope"),
    case("budget-bad-team", "SetBudget", budget(scope=pb.BudgetScope(team="a b")), "scope.team"),
    case("budget-session-month", "SetBudget",
         budget(scope=pb.BudgetScope(session="s-1"), period=pb.PERIOD_MONTH), "period"),
    # proto3 enums are open: an unknown number arrives and must be refused, not crash.
    case("budget-unknown-period", "SetBudget", budget(period=99), "period"),
    case("budget-unknown-mode", "SetBudget", budget(mode=7), "mode"),
    case("budget-unknown-customer", "SetBudget", budget(customer="nobody"), "customer",
         NOT_FOUND),
    case("upsert-no-plan", "UpsertCustomer", pb.UpsertCustomerRequest(customer="acme"), "plan"),
    case("upsert-unknown-plan", "UpsertCustomer",
         pb.UpsertCustomerRequest(customer="acme", plan="gold"), "plan"),
    case("upsert-bad-customer", "UpsertCustomer",
         pb.UpsertCustomerRequest(customer="acme/x", plan="pro"), "customer"),
    case("upsert-unknown-model", "UpsertCustomer",
         pb.UpsertCustomerRequest(customer="acme", plan="pro", overrides=pb.Overrides(
             prices_per_million={"gpt-9": pb.UnitPrices(credits={"input_tokens": "1"})})),
         "overrides.prices_per_million.gpt-9"),
    case("upsert-bad-price", "UpsertCustomer",
         pb.UpsertCustomerRequest(customer="acme", plan="pro", overrides=pb.Overrides(
             prices_per_million={"gpt-4o": pb.UnitPrices(credits={"input_tokens": "1e3"})})),
         "overrides.prices_per_million.gpt-4o.input_tokens"),
    case("upsert-negative-limit", "UpsertCustomer",
         pb.UpsertCustomerRequest(customer="acme", plan="pro",
                                  overrides=pb.Overrides(limits={"chat": -5})),
         "overrides.limits.chat"),
    case("get-unknown-customer", "GetCustomer", pb.GetCustomerRequest(customer="nobody"),
         "customer", NOT_FOUND),
]  # fmt: skip


def bad_request_field(error: grpc.aio.AioRpcError) -> tuple[str, str]:
    """The one field violation of the google.rpc.BadRequest detail, and its description."""
    status = rpc_status.from_call(error)
    assert status is not None, "no grpc-status-details-bin trailer"
    assert status.code == getattr(code_pb2, error.code().name)
    assert status.message == error.details()
    [detail] = status.details
    assert detail.Is(error_details_pb2.BadRequest.DESCRIPTOR)
    bad = error_details_pb2.BadRequest()
    assert detail.Unpack(bad)
    [violation] = bad.field_violations
    return str(violation.field), str(violation.description)


@pytest.fixture
async def held(grpc_client: GrpcClient) -> str:
    """acme (pro, 5 paid credits, a team budget) holding one reservation; its id."""
    await seed(
        grpc_client,
        grants={"paid": "5"},
        budgets=[SetBudgetRequest(scope=BudgetScope(team="eng"), limit="1")],
    )
    placed = await grpc_client.reserve(
        ReserveRequest(customer="acme", team="eng", feature="chat", idempotency_key="held",
                       amount="0.25")
    )  # fmt: skip
    assert placed.allowed
    assert placed.reservation_id is not None
    return placed.reservation_id


def _with_held(request: Any, rid: str) -> Any:
    if getattr(request, "reservation_id", None) == HELD:
        request = type(request).FromString(request.SerializeToString())
        request.reservation_id = rid
    return request


@pytest.mark.parametrize(("rpc", "request_", "code", "field"), CASES)
async def test_bad_public_request_is_refused_naming_the_field_and_moves_nothing(
    stubs: Stubs, store: RedisStore, held: str, rpc: str, request_: Any, code: Any, field: str
) -> None:
    before = await snapshot(stubs, store)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await getattr(stubs.public, rpc)(_with_held(request_, held), timeout=5)
    error = caught.value
    assert error.code() == code, error.details()
    named, description = bad_request_field(error)
    assert named == field, description
    assert description.strip()
    assert error.details() == f"{field}: {description}"
    assert await snapshot(stubs, store) == before
    # The held reservation is still held: the refusal did not settle or void it.
    assert before.balance.held_nanos == 25 * 10**7


@pytest.mark.parametrize(("rpc", "request_", "code", "field"), ADMIN_CASES)
async def test_bad_admin_request_is_refused_naming_the_field_and_moves_nothing(
    stubs: Stubs, store: RedisStore, held: str, rpc: str, request_: Any, code: Any, field: str
) -> None:
    before = await snapshot(stubs, store)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await getattr(stubs.admin, rpc)(request_, timeout=5, metadata=AUTH)
    error = caught.value
    assert error.code() == code, error.details()
    named, description = bad_request_field(error)
    assert named == field, description
    assert description.strip()
    assert await snapshot(stubs, store) == before
    assert await store.client.exists(store.layout.customer_key("nobody")) == 0


async def test_a_message_over_grpc_own_cap_is_refused_by_grpc_and_moves_nothing(
    stubs: Stubs, store: RedisStore, held: str
) -> None:
    before = await snapshot(stubs, store)
    huge = reserve(idempotency_key="k" * (5 * 1024 * 1024))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stubs.public.Reserve(huge, timeout=5)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert await snapshot(stubs, store) == before


async def test_a_valid_request_right_under_the_size_limit_is_served(
    stubs: Stubs, store: RedisStore, held: str
) -> None:
    """The size check refuses what is over the limit, not what is near it."""
    request = reserve(
        BY_AMOUNT, idempotency_key="near-limit", tags={f"t{i}": "v" * 256 for i in range(16)}
    )
    assert 4_000 < request.ByteSize() <= 65_536
    answer = await stubs.public.Reserve(request, timeout=5)
    assert (answer.allowed, answer.reason, answer.held_nanos) == (True, pb.REASON_OK, 10**7)
