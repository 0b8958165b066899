"""In-process sidecars on loopback, called over real HTTP, on the suite's own valkey-server.

Expected amounts are computed here with ``Decimal`` from ``policies/example.yaml`` as written,
never with the sidecar's own pricing code.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_FLOOR, Decimal
from typing import Any

import aiohttp
import pytest
import yaml

from sidecar.server import Sidecar
from sidecar.store.layout import Layout
from sidecar.store.redis_store import RedisStore
from tests.conftest import EXAMPLE, StartSidecar, sidecars

ADMIN_TOKEN = "t" * 32
EVENTS = Layout().stream_of("acme")
"""acme's shard's event stream, in the default layout the suite's Redis gets."""
NANO = Decimal("0.000000001")
CATALOG: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())


def price(model: str, kind: str) -> Decimal:
    """Credits per unit of ``kind`` on ``model``, straight from the example catalog."""
    return Decimal(CATALOG["models"][model]["prices_per_million"][kind]) / 10**6


def cost(model: str, units: dict[str, int]) -> Decimal:
    """Exact cost of ``units`` on ``model`` in credits (not rounded)."""
    return sum((price(model, kind) * count for kind, count in units.items()), Decimal(0))


def credits(amount: Decimal | int | str) -> str:
    """An amount as the wire writes it: a decimal string with exactly 9 fractional digits."""
    value = Decimal(amount)
    assert value == value.quantize(NANO), f"{amount} is finer than a nano-credit"
    return f"{value.quantize(NANO):f}"


def floor_nano(amount: Decimal) -> Decimal:
    return amount.quantize(NANO, rounding=ROUND_FLOOR)


def month_end_iso() -> str:
    """When this month's plan grants expire, as the balance endpoint writes it."""
    now = datetime.now(UTC)
    year, month = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
    return f"{year:04d}-{month:02d}-01T00:00:00.000Z"


@dataclass
class Answer:
    status: int
    body: Any


class Api:
    """One sidecar's public and admin listeners, called over loopback HTTP."""

    def __init__(self, http: aiohttp.ClientSession, sidecar: Sidecar) -> None:
        self.http = http
        self.sidecar = sidecar
        self.base = f"http://127.0.0.1:{sidecar.port}"
        self.admin_base = f"http://127.0.0.1:{sidecar.admin_port}"

    async def request(
        self,
        method: str,
        url: str,
        body: Any = None,
        *,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        payload = {"json": body} if data is None and body is not None else {"data": data}
        async with self.http.request(method, url, headers=headers, **payload) as response:
            assert response.content_type == "application/json", await response.text()
            return Answer(response.status, await response.json())

    async def post(self, path: str, body: Any = None, *, data: bytes | None = None) -> Answer:
        return await self.request("POST", self.base + path, body, data=data)

    async def get(self, path: str) -> Answer:
        return await self.request("GET", self.base + path)

    async def ok(self, path: str, body: Any = None) -> Any:
        """POST (or GET without a body) and insist on HTTP 200."""
        answer = await (self.post(path, body) if body is not None else self.get(path))
        assert answer.status == 200, answer.body
        return answer.body

    async def admin(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        data: bytes | None = None,
        token: str | None = ADMIN_TOKEN,
        authorization: str | None = None,
    ) -> Answer:
        headers = {}
        if authorization is not None:
            headers["Authorization"] = authorization
        elif token is not None:
            headers["Authorization"] = f"Bearer {token}"
        url = self.admin_base + path
        return await self.request(method, url, body, data=data, headers=headers)

    async def admin_ok(self, method: str, path: str, body: Any = None) -> Any:
        answer = await self.admin(method, path, body)
        assert answer.status == 200, answer.body
        return answer.body

    async def seed(
        self,
        customer: str = "acme",
        *,
        plan: str = "pro",
        grants: dict[str, str] | None = None,
        budgets: list[dict[str, Any]] | None = None,
    ) -> None:
        """Create a customer through the admin API, with grants and budgets."""
        base = f"/admin/v1/customers/{customer}"
        upserted = await self.admin_ok("PUT", base, {"plan": plan})
        assert upserted == {"customer": customer, "plan": plan, "result": "upserted"}
        for credit_type, amount in (grants or {}).items():
            body = {"credit_type": credit_type, "amount": amount, "idempotency_key": credit_type}
            granted = await self.admin_ok("POST", f"{base}/grants", body)
            assert granted["result"] == "granted"
            assert granted["amount"] == credits(amount)
        for budget in budgets or []:
            await self.admin_ok("PUT", f"{base}/budgets", budget)


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def keyspace(store: RedisStore) -> dict[bytes, Any]:
    """Every key of the server with its whole value: what "nothing moved" compares."""
    client = store.client
    out: dict[bytes, Any] = {}
    async for key in client.scan_iter(count=1000):
        kind = text(await client.type(key))
        if kind == "string":
            out[key] = await client.get(key)
        elif kind == "hash":
            out[key] = await client.hgetall(key)
        elif kind == "zset":
            out[key] = await client.zrange(key, 0, -1, withscores=True)
        elif kind == "stream":
            out[key] = await client.xrange(key)
        elif kind == "set":
            out[key] = await client.smembers(key)
        elif kind == "list":
            out[key] = await client.lrange(key, 0, -1)
        else:
            raise AssertionError(f"{key!r}: unexpected type {kind}")
    return out


@dataclass
class State:
    balance: Any
    budgets: Any
    events: int
    keys: dict[bytes, Any]


async def state(api: Api, store: RedisStore, customer: str = "acme") -> State:
    """acme as the API shows it, the length of its event stream, and the whole keyspace."""
    return State(
        balance=await api.ok(f"/v1/balance?customer={customer}"),
        budgets=await api.ok(f"/v1/budgets?customer={customer}&team=eng"),
        events=await store.client.xlen(store.layout.stream_of(customer)),
        keys=await keyspace(store),
    )


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as session:
        yield session


@pytest.fixture
async def start_sidecar(redis_url: str, store: RedisStore) -> AsyncIterator[StartSidecar]:
    """Sidecars on the (flushed) suite server; all stop at teardown."""
    async with sidecars(redis_url, ADMIN_TOKEN) as start:
        yield start


@pytest.fixture
async def sidecar(start_sidecar: StartSidecar) -> Sidecar:
    return await start_sidecar()


@pytest.fixture
def api(http: aiohttp.ClientSession, sidecar: Sidecar) -> Api:
    return Api(http, sidecar)
