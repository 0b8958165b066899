"""The ledger service as deployed: started from settings, ingesting on its own, answering its
query API over real loopback HTTP with a bearer token."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from sidecar.ledger.server import Ledger
from sidecar.ledger.settings import LedgerSettings
from sidecar.store.redis_store import RedisStore
from tests.conftest import Setup
from tests.ledger.conftest import CATALOG, Call

pytestmark = [pytest.mark.redis, pytest.mark.postgres]

TOKEN = "l" * 32
DAY = "from=2026-11-19T00:00:00Z&to=2026-11-20T00:00:00Z"


@pytest.fixture
async def ledger(redis_url: str, database: str, store: RedisStore) -> AsyncIterator[Ledger]:
    settings = LedgerSettings(
        catalog=str(CATALOG), redis=redis_url, database_url=database, port=0,
        token=TOKEN, poll_ms=10,
    )  # fmt: skip
    ledger = Ledger(settings)
    await ledger.start()
    yield ledger
    await ledger.stop()


@pytest.fixture
async def http(ledger: Ledger) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(
        f"http://127.0.0.1:{ledger.port}", headers={"Authorization": f"Bearer {TOKEN}"}
    ) as session:
        yield session


async def get(http: aiohttp.ClientSession, path: str) -> tuple[int, Any]:
    async with http.get(path) as response:
        return response.status, await response.json()


async def settled(ledger: Ledger) -> None:
    """Wait until the service has stored every entry of every registered stream."""
    async with asyncio.timeout(10):
        while True:
            status = await ledger.status()
            if status["lag"].entries == 0 and status["workers"][0]["stored"] > 0:
                return
            await asyncio.sleep(0.02)


async def test_queries_answer_from_what_the_service_ingested(
    ledger: Ledger, http: aiohttp.ClientSession, store: RedisStore, setup_customer: Setup,
    call: Call,
) -> None:  # fmt: skip
    await setup_customer(grants={"paid": "10"})
    await setup_customer("globex", plan="overage")
    costs = [
        await call(units={"input_tokens": 1000}, team="eng", agent="researcher"),  # 0.001
        await call(units={"input_tokens": 3000}, team="eng", agent="writer"),  # 0.003
        await call(units={"output_tokens": 500}, team="sales", agent="researcher"),  # 0.002
        await call("globex", units={"input_tokens": 250}, team="eng"),  # 0.00025, overage
    ]
    assert [c.cost for c in costs] == ["0.001000000", "0.003000000", "0.002000000", "0.000250000"]
    await settled(ledger)

    status, balance = await get(http, "/ledger/v1/customers/acme/balance?at=2026-11-19T13:00:00Z")
    assert status == 200
    assert balance["available"] == "10.994000000"
    assert balance["credit_types"] == [
        {"credit_type": "paid", "granted": "10.000000000", "used": "0.000000000",
         "expired": "0.000000000", "adjusted": "0.000000000", "available": "10.000000000"},
        {"credit_type": "promo", "granted": "1.000000000", "used": "0.006000000",
         "expired": "0.000000000", "adjusted": "0.000000000", "available": "0.994000000"},
    ]  # fmt: skip
    # After the plan's promo credits expire (1 December), they are no longer available.
    _, later = await get(http, "/ledger/v1/customers/acme/balance?at=2026-12-02T00:00:00Z")
    assert later["credit_types"][1]["expired"] == "0.994000000"
    assert later["available"] == "10.000000000"
    _, overage = await get(http, "/ledger/v1/customers/globex/balance?at=2026-11-20T00:00:00Z")
    assert (overage["available"], overage["overage"]) == ("0.000000000", "0.000250000")

    status, usage = await get(
        http, f"/ledger/v1/customers/acme/usage?{DAY}&group_by=team,agent&bucket=hour"
    )
    assert status == 200
    rows = [(r["bucket"], r["group"], r["events"], r["cost"], r["units"]) for r in usage["rows"]]
    assert rows == [
        ("2026-11-19T12:00:00.000Z", {"team": "eng", "agent": "researcher"}, 1, "0.001000000",
         {"input_tokens": 1000}),
        ("2026-11-19T12:00:00.000Z", {"team": "eng", "agent": "writer"}, 1, "0.003000000",
         {"input_tokens": 3000}),
        ("2026-11-19T12:00:00.000Z", {"team": "sales", "agent": "researcher"}, 1, "0.002000000",
         {"output_tokens": 500}),
    ]  # fmt: skip
    assert (usage["events"], usage["cost"]) == (3, "0.006000000")
    _, by_agent = await get(http, f"/ledger/v1/customers/acme/usage?{DAY}&group_by=agent")
    assert [(r["group"]["agent"], r["cost"]) for r in by_agent["rows"]] == [
        ("researcher", "0.003000000"),
        ("writer", "0.003000000"),
    ]

    status, invoice = await get(http, "/ledger/v1/customers/acme/invoice?month=2026-11")
    assert status == 200
    assert invoice["subtotal"] == "0.006000000"
    assert invoice["credits_applied"] == [{"credit_type": "promo", "amount": "0.006000000"}]

    async with http.get(f"/ledger/v1/export?{DAY}&format=csv") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/csv")
        lines = list(csv.DictReader(io.StringIO(await response.text())))
    assert len(lines) == 4
    assert sum(Decimal(r["cost"]) for r in lines) == Decimal("0.00625")
    assert {r["customer"] for r in lines} == {"acme", "globex"}
    assert json.loads(lines[0]["units"]) == {"input_tokens": 1000}
    async with http.get(f"/ledger/v1/export?{DAY}&format=jsonl&customer=globex") as response:
        assert response.headers["Content-Type"] == "application/x-ndjson"
        objects = [json.loads(line) for line in (await response.text()).splitlines()]
    assert [(x["customer"], x["cost"], x["uncovered"], x["team"]) for x in objects] == [
        ("globex", "0.000250000", "0.000250000", "eng")
    ]

    # The worker trims what it stored from the streams (they are its only reader).
    await ledger.ingestors[0].reader.trim()
    assert await store.client.xlen(store.layout.stream_of("acme")) == 0


async def test_every_route_needs_the_token_and_names_bad_input(
    ledger: Ledger, http: aiohttp.ClientSession
) -> None:
    base = f"http://127.0.0.1:{ledger.port}"
    async with aiohttp.ClientSession() as anonymous:
        for path in ("/ledger/v1/status", "/ledger/v1/customers/acme/balance"):
            async with anonymous.get(base + path) as response:
                assert response.status == 401
            async with anonymous.get(
                base + path, headers={"Authorization": "Bearer wrong-token-0123456789"}
            ) as response:
                assert response.status == 403
    for path, field in (
        (f"/ledger/v1/customers/acme/usage?{DAY}&group_by=planet", "group_by"),
        (f"/ledger/v1/customers/acme/usage?{DAY}&bucket=week", "bucket"),
        ("/ledger/v1/customers/acme/usage?from=yesterday&to=2026-11-20T00:00:00Z", "from"),
        ("/ledger/v1/customers/acme/invoice?month=November", "month"),
        (f"/ledger/v1/export?{DAY}&format=xml", "format"),
        ("/ledger/v1/customers/a%20b/balance", "customer"),
    ):
        status, body = await get(http, path)
        assert (status, body["error"]["code"], body["error"]["field"]) == (
            400, "invalid_request", field
        ), path  # fmt: skip
    status, body = await get(http, "/ledger/v1/status")
    assert status == 200
    assert body["lag"] == {
        "streams": 0,
        "length": 0,
        "undelivered": 0,
        "pending": 0,
        "oldest_ms": None,
    }
    assert body["workers"] == [{"consumer": body["workers"][0]["consumer"], "stored": 0,
                                "unparsed": 0, "shards": 256, "error": None}]  # fmt: skip
