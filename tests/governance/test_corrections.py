"""Corrections: a refund of a committed call, in parts, and adjustments (a debit and a credit)
move the live balance in Redis and the ledger alike, are idempotent by key, show on the
invoice preview, and leave ``creditgate ledger reconcile`` with nothing to report."""

from __future__ import annotations

import asyncio
import sys
from decimal import Decimal
from typing import Any

import pytest

from tests.conftest import EXAMPLE
from tests.governance.conftest import LEDGER_TOKEN, Deployment
from tests.governance.test_alerts_webhooks import UNITS

pytestmark = [pytest.mark.redis, pytest.mark.postgres]

COST = Decimal("0.00075")  # UNITS of gpt-4o-mini


async def _balance(deployment: Deployment) -> Decimal:
    url = f"http://127.0.0.1:{deployment.sidecars[0].port}/v1/balance?customer=acme"
    async with deployment.http.get(url) as response:
        return Decimal((await response.json())["balance"])


async def _ledger(deployment: Deployment, path: str, body: Any = None) -> tuple[int, Any]:
    method = "GET" if body is None else "POST"
    return await deployment.call(method, deployment.ledger_url(path), LEDGER_TOKEN, body)


async def _ingested(deployment: Deployment, corrections: int, credits: int = 0) -> None:
    """Wait until the ledger holds the call, ``corrections`` and ``credits`` credit
    adjustments."""
    async with asyncio.timeout(30):
        while True:
            async with deployment.ledger.pool.acquire() as db:  # type: ignore[union-attr]
                found = await db.fetchval("SELECT count(*) FROM corrections")
                calls = await db.fetchval("SELECT count(*) FROM usage_events")
                granted = await db.fetchval(
                    "SELECT count(*) FROM credit_grants WHERE reason = 'adjustment'"
                )
            if found >= corrections and calls >= 1 and granted >= credits:
                return
            await asyncio.sleep(0.05)


async def test_refunds_and_adjustments_move_redis_and_the_ledger_alike_once(
    deployment: Deployment, redis_server: Any
) -> None:
    base = f"http://127.0.0.1:{deployment.sidecars[0].port}/v1"
    reserve = {"customer": "acme", "feature": "chat", "model": "gpt-4o-mini", "units": UNITS,
               "idempotency_key": "call-1"}  # fmt: skip
    async with deployment.http.post(f"{base}/reserve", json=reserve) as response:
        rid = (await response.json())["reservation_id"]
    async with deployment.http.post(
        f"{base}/commit", json={"reservation_id": rid, "units": UNITS}
    ) as response:
        assert (await response.json())["result"] == "committed"
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

    reconcile = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sidecar.cli", "ledger", "reconcile", "--redis", redis_server.url,
        "--database-url", deployment.ledger.database_url or "", "--catalog", str(EXAMPLE),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await reconcile.communicate()
    assert reconcile.returncode == 0, (out.decode(), err.decode())
