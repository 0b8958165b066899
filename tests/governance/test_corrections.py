"""Corrections: a refund of a committed call, in parts, and adjustments (a debit and a credit)
move the live balance in Redis and the ledger alike, are idempotent by key, show on the
invoice preview, and leave ``creditgate ledger reconcile`` with nothing to report; over HTTP
and over the ledger's gRPC service alike."""

from __future__ import annotations

import asyncio
import sys
from decimal import Decimal
from typing import Any

import grpc
import pytest

from sidecar.rpc.gen.creditgate.v1 import creditgate_pb2 as pb
from sidecar.rpc.gen.creditgate.v1 import creditgate_pb2_grpc as pb_grpc
from sidecar.store import layout
from sidecar.store.redis_store import RedisStore
from tests.conftest import EXAMPLE
from tests.governance.conftest import LEDGER_TOKEN, Deployment
from tests.governance.test_alerts_webhooks import UNITS
from tests.rpc.test_bad_input import bad_request_field

pytestmark = [pytest.mark.redis, pytest.mark.postgres]

COST = Decimal("0.00075")  # UNITS of gpt-4o-mini


async def _balance(deployment: Deployment, customer: str = "acme") -> Decimal:
    url = f"http://127.0.0.1:{deployment.sidecars[0].port}/v1/balance?customer={customer}"
    async with deployment.http.get(url) as response:
        return Decimal((await response.json())["balance"])


async def _ledger(deployment: Deployment, path: str, body: Any = None) -> tuple[int, Any]:
    method = "GET" if body is None else "POST"
    return await deployment.call(method, deployment.ledger_url(path), LEDGER_TOKEN, body)


async def _committed(deployment: Deployment, customer: str = "acme", **subject: str) -> str:
    """One committed call of ``customer`` (and ``subject``: team, session...); its event id."""
    base = f"http://127.0.0.1:{deployment.sidecars[0].port}/v1"
    reserve = {"customer": customer, "feature": "chat", "model": "gpt-4o-mini", "units": UNITS,
               "idempotency_key": f"call-{customer}", **subject}  # fmt: skip
    async with deployment.http.post(f"{base}/reserve", json=reserve) as response:
        rid = str((await response.json())["reservation_id"])
    async with deployment.http.post(
        f"{base}/commit", json={"reservation_id": rid, "units": UNITS}
    ) as response:
        assert (await response.json())["result"] == "committed"
    return rid


async def _ingested(
    deployment: Deployment, corrections: int, credits: int = 0, calls: int = 1
) -> None:
    """Wait until the ledger holds ``calls`` calls, ``corrections`` and ``credits`` credit
    adjustments."""
    async with asyncio.timeout(30):
        while True:
            async with deployment.ledger.pool.acquire() as db:  # type: ignore[union-attr]
                found = await db.fetchval("SELECT count(*) FROM corrections")
                stored = await db.fetchval("SELECT count(*) FROM usage_events")
                granted = await db.fetchval(
                    "SELECT count(*) FROM credit_grants WHERE reason = 'adjustment'"
                )
            if found >= corrections and stored >= calls and granted >= credits:
                return
            await asyncio.sleep(0.05)


async def test_refunds_and_adjustments_move_redis_and_the_ledger_alike_once(
    deployment: Deployment, redis_server: Any
) -> None:
    rid = await _committed(deployment)
    await _ingested(deployment, 0)
    start = await _balance(deployment)
    path = "/customers/acme/refunds"

    part = {"idempotency_key": "r1", "event_id": rid, "amount": "0.0005", "reason": "bad answer"}
    status, answer = await _ledger(deployment, path, part)
    assert (status, answer["result"]) == (200, "refunded"), answer
    assert [m["amount"] for m in answer["moves"]] == ["0.000500000"]
    assert await _balance(deployment) == start + Decimal("0.0005")
    status, again = await _ledger(deployment, path, part)  # a retry: nothing moves
    assert (status, again["result"]) == (200, "already_done")
    assert await _balance(deployment) == start + Decimal("0.0005")

    rest = {"idempotency_key": "r2", "event_id": rid, "reason": "the rest", "amount": "0.00025"}
    status, answer = await _ledger(deployment, path, rest)
    assert (status, answer["result"]) == (200, "refunded"), answer
    assert await _balance(deployment) == start + COST
    over = {"idempotency_key": "r3", "event_id": rid, "reason": "too much", "amount": "0.000000001"}
    status, refused = await _ledger(deployment, path, over)
    assert (status, refused["error"]["field"]) == (400, "amount"), refused
    status, missing = await _ledger(
        deployment, path, {"idempotency_key": "r4", "event_id": "r_nope", "reason": "x"}
    )
    assert (status, missing["error"]["field"]) == (404, "event_id")

    adjust = "/customers/acme/adjustments"
    debit = {"idempotency_key": "a1", "amount": "-0.3", "credit_type": "included",
             "reason": "billing fix", "corrects": "INV-2026-11-7"}  # fmt: skip
    status, answer = await _ledger(deployment, adjust, debit)
    assert (status, answer["result"]) == (200, "adjusted"), answer
    assert await _balance(deployment) == start + COST - Decimal("0.3")
    status, again = await _ledger(deployment, adjust, debit)
    assert again["result"] == "already_done"
    credit = {"idempotency_key": "a2", "amount": "2", "credit_type": "paid", "reason": "goodwill"}
    status, answer = await _ledger(deployment, adjust, credit)
    assert (status, answer["result"]) == (200, "adjusted"), answer
    expected = start + COST - Decimal("0.3") + 2
    assert await _balance(deployment) == expected
    too_much = {**debit, "idempotency_key": "a3", "amount": "-1000"}
    status, refused = await _ledger(deployment, adjust, too_much)
    assert (status, refused["error"]["field"]) == (400, "amount")
    for bad, field in (({**debit, "idempotency_key": "a4", "reason": ""}, "reason"),
                       ({**debit, "idempotency_key": "a5", "credit_type": "gold"}, "credit_type"),
                       ({**debit, "idempotency_key": "a6", "amount": "0"}, "amount")):  # fmt: skip
        status, refused = await _ledger(deployment, adjust, bad)
        assert (status, refused["error"]["field"]) == (400, field), bad
    assert await _balance(deployment) == expected  # nothing moved

    await _ingested(deployment, 3, credits=1)
    status, ledger = await _ledger(deployment, "/customers/acme/balance")
    assert Decimal(ledger["available"]) == expected  # the ledger agrees with Redis
    status, bill = await _ledger(
        deployment, "/customers/acme/invoice?from=2026-01-01T00:00:00Z&to=2030-01-01T00:00:00Z"
    )
    assert [(c["kind"], c["amount"]) for c in bill["corrections"]] == [
        ("refund", "0.000500000"), ("refund", "0.000250000"),
        ("adjustment", "-0.300000000"), ("adjustment", "2.000000000"),
    ]  # fmt: skip
    assert bill["corrected"] == "1.700750000"
    assert bill["corrections"][0]["corrects"] == rid

    await _reconciled(deployment, redis_server)


async def _reconciled(deployment: Deployment, redis_server: Any) -> None:
    """``creditgate ledger reconcile`` finds Redis and the ledger in agreement."""
    reconcile = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sidecar.cli", "ledger", "reconcile", "--redis", redis_server.url,
        "--database-url", deployment.ledger.database_url or "", "--catalog", str(EXAMPLE),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await reconcile.communicate()
    assert reconcile.returncode == 0, (out.decode(), err.decode())


async def test_a_whole_refund_gives_back_credits_then_overage_and_the_budgets_room(
    deployment: Deployment, redis_server: Any, store: RedisStore
) -> None:
    """initech, on a plan with overage, makes a call its credits cover only in part. Refunded
    whole, the credits go back to their bucket, the overage comes off the month's uncovered use
    and is owed back on the invoice, and the team budget and the session the call counted in get
    the room back. A retry moves nothing, and reconcile finds Redis and the ledger agreeing."""
    await deployment.operator("PUT", "/customers/initech", {"plan": "enterprise"})
    budget = {"limit": "1", "scope": {"team": "eng"}, "period": "day"}
    await deployment.operator("PUT", "/customers/initech/budgets", budget)
    drain = {"idempotency_key": "drain", "amount": "-499.9999", "credit_type": "included",
             "reason": "leave 0.0001 of the 500 included"}  # fmt: skip
    status, answer = await _ledger(deployment, "/customers/initech/adjustments", drain)
    assert status == 200, answer
    rid = await _committed(deployment, "initech", team="eng", session="s1")
    base = f"http://127.0.0.1:{deployment.sidecars[0].port}/v1"
    session = store.layout.key("initech", layout.session_key("s1"))

    async def state() -> tuple[Decimal, Decimal, Decimal, Decimal]:
        async with deployment.http.get(f"{base}/balance?customer=initech") as response:
            seen = await response.json()
        [eng] = [b for b in seen["budgets"] if b["scope"] == "team:eng"]
        used = Decimal(int(await store.client.hget(session, layout.USED) or 0)) / 10**9
        return (Decimal(seen["balance"]), Decimal(seen["uncovered_used"]), Decimal(eng["used"]),
                used)  # fmt: skip

    overage = COST - Decimal("0.0001")
    assert await state() == (0, overage, COST, COST)
    await _ingested(deployment, 1)

    path = "/customers/initech/refunds"
    part = {"idempotency_key": "part", "event_id": rid, "reason": "slow", "amount": "0.00005"}
    status, answer = await _ledger(deployment, path, part)
    assert (status, answer["uncovered"], answer["moves"][0]["amount"]) == (
        200, "0.000000000", "0.000050000",
    ), answer  # fmt: skip
    # At once, whether or not the ledger stored the first refund yet (tests/ledger/test_refunds.py
    # pins the case it has not): the rest is what Redis counts.
    rest = {"idempotency_key": "rest", "event_id": rid, "reason": "the model was down"}
    status, answer = await _ledger(deployment, path, rest)
    assert (status, answer["result"]) == (200, "refunded"), answer
    assert (Decimal(answer["amount"]), Decimal(answer["uncovered"])) == (
        COST - Decimal("0.00005"), overage,
    )  # fmt: skip
    assert [(m["credit_type"], Decimal(m["amount"])) for m in answer["moves"]] == [
        ("included", Decimal("0.00005"))
    ]
    assert await state() == (Decimal("0.0001"), 0, 0, 0)
    status, again = await _ledger(deployment, path, rest)  # a retry: nothing moves
    assert (status, again["result"], again["amount"]) == (200, "already_done", answer["amount"])
    more = {"idempotency_key": "more", "event_id": rid, "reason": "x", "amount": "0.000000001"}
    status, refused = await _ledger(deployment, path, more)
    assert (status, refused["error"]["field"]) == (400, "amount"), refused
    status, refused = await _ledger(deployment, path, {**rest, "idempotency_key": "none-left"})
    assert (status, refused["error"]["field"]) == (400, "event_id"), refused
    assert "nothing left to refund" in refused["error"]["message"]
    assert await state() == (Decimal("0.0001"), 0, 0, 0)

    await _ingested(deployment, 3)
    window = "from=2026-01-01T00:00:00Z&to=2030-01-01T00:00:00Z"
    status, bill = await _ledger(deployment, f"/customers/initech/invoice?{window}")
    assert (Decimal(bill["overage"]), Decimal(bill["overage_refunded"])) == (overage, overage)
    fees = sum(Decimal(f["amount"]) for f in bill["fees"])
    assert Decimal(bill["amount_due"]) == fees  # the overage charged, and owed back
    status, owed = await _ledger(deployment, "/customers/initech/balance")
    assert (status, owed["overage"]) == (200, "0.000000000")  # billed, then refunded
    refunds = [c for c in bill["corrections"] if c["kind"] == "refund"]
    assert [(Decimal(c["amount"]), Decimal(c["uncovered"])) for c in refunds] == [
        (Decimal("0.00005"), 0), (COST - Decimal("0.00005"), overage),
    ]  # fmt: skip
    await _reconciled(deployment, redis_server)


async def test_corrections_over_grpc_move_money_as_over_http(deployment: Deployment) -> None:
    """The same refund and adjustments, for acme over HTTP and for globex over the ledger's
    gRPC service, leave both with the same balance and the same invoice corrections; gRPC
    refuses bad input, unknown calls, wrong tokens and scoped tokens as HTTP does."""
    calls = {c: await _committed(deployment, c) for c in ("acme", "globex")}
    await _ingested(deployment, 0, calls=2)
    start = {c: await _balance(deployment, c) for c in calls}
    assert start["acme"] == start["globex"]
    scoped = await deployment.token("globex", "admin")
    for path, body in (
        ("refunds", {"idempotency_key": "r1", "event_id": calls["acme"], "amount": "0.0005",
                     "reason": "bad answer"}),
        ("adjustments", {"idempotency_key": "a1", "amount": "-0.3", "credit_type": "included",
                         "reason": "billing fix"}),
        ("adjustments", {"idempotency_key": "a2", "amount": "2", "credit_type": "paid",
                         "reason": "goodwill"}),
    ):  # fmt: skip
        status, answer = await _ledger(deployment, f"/customers/acme/{path}", body)
        assert status == 200, answer
    metadata = (("authorization", f"Bearer {LEDGER_TOKEN}"),)
    refund = pb.RefundRequest(customer="globex", idempotency_key="r1", event_id=calls["globex"],
                              amount_nanos=500_000, reason="bad answer")  # fmt: skip
    debit = pb.AdjustRequest(customer="globex", idempotency_key="a1", amount_nanos=-3 * 10**8,
                             credit_type="included", reason="billing fix")  # fmt: skip
    credit = pb.AdjustRequest(customer="globex", idempotency_key="a2", amount_nanos=2 * 10**9,
                              credit_type="paid", reason="goodwill")  # fmt: skip
    async with grpc.aio.insecure_channel(f"127.0.0.1:{deployment.ledger.grpc_port}") as channel:
        stub = pb_grpc.CreditgateLedgerServiceStub(channel)  # type: ignore[no-untyped-call]
        answer = await stub.Refund(refund, metadata=metadata)
        assert answer.result == pb.CORRECTION_RESULT_REFUNDED
        assert (answer.amount_nanos, answer.event_id) == (500_000, calls["globex"])
        assert [m.amount_nanos for m in answer.moves] == [500_000]
        assert answer.uncovered_nanos == 0  # its credits covered it
        again = await stub.Refund(refund, metadata=metadata)  # a retry: nothing moves
        assert again.result == pb.CORRECTION_RESULT_ALREADY_DONE
        for request in (debit, credit):
            answer = await stub.Adjust(request, metadata=metadata)
            assert answer.result == pb.CORRECTION_RESULT_ADJUSTED, answer
        assert (await stub.Adjust(debit, metadata=metadata)).result == (
            pb.CORRECTION_RESULT_ALREADY_DONE
        )
        moved = await _balance(deployment, "globex")

        refusals = [
            (stub.Refund, pb.RefundRequest(customer="globex", idempotency_key="r2",
                                           event_id=calls["globex"], amount_nanos=10**9,
                                           reason="too much"), metadata,
             grpc.StatusCode.INVALID_ARGUMENT, "amount_nanos"),
            (stub.Refund, pb.RefundRequest(customer="globex", idempotency_key="r3",
                                           event_id="r_nope", reason="x"), metadata,
             grpc.StatusCode.NOT_FOUND, "event_id"),
            (stub.Adjust, pb.AdjustRequest(customer="globex", idempotency_key="a3",
                                           amount_nanos=-1, credit_type="gold", reason="x"),
             metadata, grpc.StatusCode.INVALID_ARGUMENT, "credit_type"),
            (stub.Adjust, pb.AdjustRequest(customer="globex", idempotency_key="a4",
                                           amount_nanos=-1, credit_type="paid"),
             metadata, grpc.StatusCode.INVALID_ARGUMENT, "reason"),
            (stub.Adjust, credit, (("authorization", f"Bearer {scoped}"),),
             grpc.StatusCode.PERMISSION_DENIED, "Authorization"),
            (stub.Adjust, credit, (("authorization", "Bearer wrong"),),
             grpc.StatusCode.PERMISSION_DENIED, "authorization"),
            (stub.Adjust, credit, (), grpc.StatusCode.UNAUTHENTICATED, "authorization"),
        ]  # fmt: skip
        for method, request, auth, code, field in refusals:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await method(request, metadata=auth)
            assert refused.value.code() == code, refused.value.details()
            assert bad_request_field(refused.value)[0] == field
    assert moved == start["globex"] + Decimal("0.0005") - Decimal("0.3") + 2
    assert await _balance(deployment, "globex") == moved  # the refusals moved nothing
    assert await _balance(deployment, "acme") == moved

    await _ingested(deployment, 4, credits=2, calls=2)
    window = "from=2026-01-01T00:00:00Z&to=2030-01-01T00:00:00Z"
    bills = {}
    for customer in calls:
        status, bill = await _ledger(deployment, f"/customers/{customer}/invoice?{window}")
        assert status == 200, bill
        bills[customer] = [(c["kind"], c["amount"]) for c in bill["corrections"]]
    assert (
        bills["globex"]
        == bills["acme"]
        == [
            ("refund", "0.000500000"),
            ("adjustment", "-0.300000000"),
            ("adjustment", "2.000000000"),
        ]
    )
