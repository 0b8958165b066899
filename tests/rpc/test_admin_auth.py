"""Every admin RPC refuses a missing bearer token (UNAUTHENTICATED) and a wrong one
(PERMISSION_DENIED), naming ``authorization``, before it looks at the request; nothing moves."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from sidecar.client import GrpcClient
from sidecar.engine.periods import month_end_ms, period_start_ms
from sidecar.rpc.gen.creditgate.v1 import creditgate_pb2 as pb
from sidecar.rpc.gen.creditgate.v1 import creditgate_pb2_grpc as pb_grpc
from sidecar.server import Sidecar
from sidecar.store.redis_store import RedisStore
from sidecar.times import wall_clock_ms
from tests.rpc.conftest import (
    ADMIN_TOKEN,
    AUTH,
    Stubs,
    grpc_admin_target,
    grpc_target,
    nanos,
    plan_grant,
    seed,
)
from tests.rpc.conftest import snapshot as moved

pytestmark = pytest.mark.redis

UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
DENIED = grpc.StatusCode.PERMISSION_DENIED
ROUTES: list[tuple[str, Any]] = [
    ("UpsertCustomer", pb.UpsertCustomerRequest(customer="acme", plan="enterprise")),
    ("UpsertCustomer", pb.UpsertCustomerRequest(customer="newco", plan="pro")),
    ("Grant", pb.GrantRequest(customer="acme", credit_type="paid", amount_nanos=5 * 10**9,
                              idempotency_key="g")),
    ("SetBudget", pb.SetBudgetRequest(customer="acme", scope=pb.BudgetScope(team="eng"),
                                      limit_nanos=1)),
    ("GetCustomer", pb.GetCustomerRequest(customer="acme")),
    # Bad requests too: the token is checked first, so they say nothing about the input.
    ("Grant", pb.GrantRequest(customer="acme", credit_type="gold", amount_nanos=0)),
    ("UpsertCustomer", pb.UpsertCustomerRequest(customer="a b", plan="x" * 100_000)),
]  # fmt: skip
CREDENTIALS: list[Any] = [
    pytest.param(None, UNAUTHENTICATED, id="none"),
    pytest.param("", UNAUTHENTICATED, id="empty"),
    pytest.param("Bearer", UNAUTHENTICATED, id="bearer-alone"),
    pytest.param("Bearer ", UNAUTHENTICATED, id="bearer-without-token"),
    pytest.param(f"Basic {ADMIN_TOKEN}", UNAUTHENTICATED, id="basic-scheme"),
    pytest.param(ADMIN_TOKEN, UNAUTHENTICATED, id="bare-token"),
    pytest.param("Bearer " + "u" * 32, DENIED, id="wrong"),
    pytest.param(f"Bearer {ADMIN_TOKEN[:-1]}", DENIED, id="prefix"),
    pytest.param(f"Bearer {ADMIN_TOKEN}x", DENIED, id="longer"),
    pytest.param(f"Bearer {ADMIN_TOKEN.upper()}", DENIED, id="case"),
    pytest.param(f"Bearer  {ADMIN_TOKEN}", DENIED, id="two-spaces"),
]


@pytest.mark.parametrize(("authorization", "code"), CREDENTIALS)
async def test_every_admin_rpc_refuses_bad_credentials_and_moves_nothing(
    stubs: Stubs,
    store: RedisStore,
    grpc_client: GrpcClient,
    authorization: str | None,
    code: grpc.StatusCode,
) -> None:
    await seed(grpc_client, plan="free", grants={"paid": "1"})
    before = await moved(stubs, store)
    metadata = () if authorization is None else (("authorization", authorization),)
    for rpc, request in ROUTES:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await getattr(stubs.admin, rpc)(request, timeout=5, metadata=metadata)
        error = caught.value
        assert error.code() == code, (rpc, error.details())
        status = rpc_status.from_call(error)
        assert status is not None
        bad = error_details_pb2.BadRequest()
        assert status.details[0].Unpack(bad)
        assert bad.field_violations[0].field == "authorization"
        assert bad.field_violations[0].description.strip()
        assert "balance_nanos" not in (error.details() or "")  # a refused read reveals nothing
    assert await moved(stubs, store) == before
    assert await store.client.exists(store.layout.customer_key("newco")) == 0


async def test_the_right_token_opens_every_admin_rpc(
    stubs: Stubs, store: RedisStore, grpc_client: GrpcClient
) -> None:
    """The control for the test above: the same first five calls with the token succeed."""
    await seed(grpc_client, plan="free", grants={"paid": "1"})
    before = wall_clock_ms()
    answers = [
        await getattr(stubs.admin, rpc)(request, timeout=5, metadata=AUTH)
        for rpc, request in ROUTES[:5]
    ]
    after = wall_clock_ms()
    assert (answers[0].customer, answers[0].plan) == ("acme", "enterprise")
    assert (answers[1].customer, answers[1].plan) == ("newco", "pro")
    assert (answers[2].result, answers[2].amount_nanos) == (pb.GRANT_RESULT_GRANTED, 5 * 10**9)
    assert (answers[3].scope, answers[3].limit_nanos) == ("team:eng", 1)
    assert answers[4].plan == "enterprise"
    # free's promo grant stays after the upgrade; enterprise adds its own for the rest of the
    # month (a change in the middle of one: the share left, of the wall clock's month); 1 + 5
    # paid.
    (upgrade,) = [b for b in answers[4].buckets if b.credit_type == "included"]
    start, end = period_start_ms("month", before), month_end_ms(before)
    full = nanos(plan_grant("enterprise"))
    assert full * (end - after) // (end - start) <= upgrade.amount_nanos
    assert upgrade.amount_nanos <= full * (end - before) // (end - start)
    expected = nanos(plan_grant("free") + 1 + 5) + upgrade.amount_nanos
    assert answers[4].balance_nanos == expected
    assert await store.client.exists(store.layout.customer_key("newco")) == 1
    # The scheme is case-insensitive, as RFC 7235 says.
    lower = await stubs.admin.GetCustomer(
        pb.GetCustomerRequest(customer="acme"),
        timeout=5,
        metadata=(("authorization", f"bearer {ADMIN_TOKEN}"),),
    )
    assert lower == answers[4]


async def test_each_port_serves_only_its_own_service(sidecar: Sidecar) -> None:
    """The admin service is not on the public port, and the public one not on the admin port."""
    async with (
        grpc.aio.insecure_channel(grpc_target(sidecar)) as public,
        grpc.aio.insecure_channel(grpc_admin_target(sidecar)) as admin,
    ):
        admin_on_public = pb_grpc.CreditgateAdminServiceStub(public)  # type: ignore[no-untyped-call]
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await admin_on_public.UpsertCustomer(
                pb.UpsertCustomerRequest(customer="acme", plan="pro"), timeout=5, metadata=AUTH
            )
        assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
        public_on_admin = pb_grpc.CreditgateServiceStub(admin)  # type: ignore[no-untyped-call]
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await public_on_admin.GetBalance(
                pb.GetBalanceRequest(customer="acme"), timeout=5, metadata=AUTH
            )
        assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert sidecar.grpc_port != sidecar.grpc_admin_port
