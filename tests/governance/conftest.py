"""A sidecar and a ledger on the suite's Redis and a new database, both with operator tokens,
and the scoped tokens the operator issues."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from sidecar.embedded import EmbeddedRedis
from sidecar.ledger.server import Ledger
from sidecar.ledger.settings import LedgerSettings
from sidecar.server import Sidecar
from sidecar.store.redis_store import RedisStore
from tests.conftest import EXAMPLE, sidecars
from tests.ledger.conftest import database, postgres  # noqa: F401 - fixtures

pytestmark = [pytest.mark.redis, pytest.mark.postgres]

WAIT_S = 60.0
"""For what the ledger does in the background (ingest, deliveries with backoff); only a bug
takes this long."""
ADMIN_TOKEN = "o" * 32
LEDGER_TOKEN = "l" * 32
OPERATOR = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def until(check: Callable[[], Awaitable[Any]], what: str) -> Any:
    """What ``check`` returns once it is truthy, polled; fails naming ``what`` past WAIT_S."""
    async with asyncio.timeout(WAIT_S):
        while not (found := await check()):
            await asyncio.sleep(0.05)
    assert found, what
    return found


@dataclass
class Deployment:
    sidecars: list[Sidecar]
    ledger: Ledger
    http: aiohttp.ClientSession

    def admin(self, path: str, sidecar: int = 0) -> str:
        return f"http://127.0.0.1:{self.sidecars[sidecar].admin_port}/admin/v1{path}"

    def ledger_url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.ledger.port}/ledger/v1{path}"

    async def call(self, method: str, url: str, token: str, body: Any = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"}
        async with self.http.request(method, url, json=body, headers=headers) as response:
            kind = response.headers.get("Content-Type", "")
            json = kind.startswith("application/json")
            answer = await response.json() if json else await response.text()
            return response.status, answer

    async def operator(self, method: str, path: str, body: Any = None) -> Any:
        status, answer = await self.call(method, self.admin(path), ADMIN_TOKEN, body)
        assert status == 200, answer
        return answer

    async def token(self, customer: str, role: str, team: str | None = None, **more: Any) -> str:
        body = {"idempotency_key": f"{customer}-{role}-{team}", "role": role, **more}
        if team is not None:
            body["team"] = team
        answer = await self.operator("POST", f"/customers/{customer}/tokens", body)
        assert answer["result"] == "issued", answer
        return str(answer["secret"])


@pytest.fixture
async def deployment(
    redis_server: EmbeddedRedis,
    store: RedisStore,
    database: str,  # noqa: F811 - a fixture
) -> AsyncIterator[Deployment]:
    """Two sidecars and a ledger; customers acme and globex on plan pro."""
    settings = LedgerSettings(
        catalog=str(EXAMPLE), redis=redis_server.url, database_url=database, port=0,
        token=LEDGER_TOKEN, grpc_port=0, poll_ms=10, webhook_backoff_ms=50,
    )  # fmt: skip
    ledger = Ledger(settings)
    await ledger.start()
    try:
        async with (
            sidecars(redis_server.url, ADMIN_TOKEN) as start,
            aiohttp.ClientSession() as http,
        ):
            deployment = Deployment([await start(), await start()], ledger, http)
            for customer in ("acme", "globex"):
                await deployment.operator("PUT", f"/customers/{customer}", {"plan": "pro"})
            yield deployment
    finally:
        await ledger.stop()
