"""A sidecar with its proxy listener in front of the demo upstream (sidecar/proxy/demo.py, a
real HTTP server speaking the OpenAI formats), on the suite's valkey, driven by the official
``openai`` SDK. Expected amounts are computed here with Decimal from the example catalog."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
import yaml
from aiohttp import web

from sidecar.proxy.demo import DemoUpstream
from sidecar.server import Sidecar
from sidecar.store.redis_store import RedisStore
from tests.conftest import EXAMPLE, StartSidecar, sidecars

ADMIN_TOKEN = "p" * 32
UPSTREAM_KEY = "upstream-secret"
CATALOG: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
MODELS = ["gpt-4o-mini", "gpt-4o", "llama-3.1-8b"]


def cost(model: str, units: dict[str, int]) -> Decimal:
    prices = CATALOG["models"][model]["prices_per_million"]
    return sum((Decimal(prices[k]) * n / 10**6 for k, n in units.items()), Decimal(0))


@dataclass
class Proxied:
    sidecar: Sidecar
    upstream: DemoUpstream
    http: aiohttp.ClientSession
    store: RedisStore

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.sidecar.proxy_port}/v1"

    def admin_url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.sidecar.admin_port}/admin/v1/customers{path}"

    async def admin(self, method: str, path: str, body: Any = None) -> Any:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        async with self.http.request(
            method, self.admin_url(path), json=body, headers=headers
        ) as answer:
            assert answer.status == 200, await answer.text()
            return await answer.json()

    async def seed(self, customer: str = "acme", *, plan: str = "pro", paid: str = "5") -> None:
        await self.admin("PUT", f"/{customer}", {"plan": plan})
        grant = {"credit_type": "paid", "amount": paid, "idempotency_key": "paid"}
        await self.admin("POST", f"/{customer}/grants", grant)

    async def key(self, customer: str = "acme", **subject: str) -> str:
        name = "-".join(f"{k}.{v}" for k, v in sorted(subject.items()))
        body = {"idempotency_key": f"k-{name}", **subject}
        issued = await self.admin("POST", f"/{customer}/proxy-keys", body)
        return str(issued["secret"])

    def client(self, key: str, **options: Any) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.base_url, api_key=key, max_retries=0, **options)

    async def balance(self, customer: str = "acme") -> Any:
        return await self.admin("GET", f"/{customer}")

    async def debits(self, customer: str = "acme") -> list[dict[str, str]]:
        entries = await self.store.client.xrange(self.store.layout.stream_of(customer))
        out = []
        for _, fields in entries:
            event = {k.decode(): v.decode() for k, v in fields.items()}
            if event["kind"] == "debit":
                out.append(event)
        return out


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[DemoUpstream, int]]:
    demo = DemoUpstream(words=40, api_key=UPSTREAM_KEY)
    runner = web.AppRunner(demo.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield demo, port
    await runner.cleanup()


@pytest.fixture
def upstreams_file(tmp_path: Path, upstream: tuple[DemoUpstream, int]) -> Path:
    path = tmp_path / "upstreams.yaml"
    spec = {"upstreams": {"demo": {
        "base_url": f"http://127.0.0.1:{upstream[1]}/v1", "api_key_env": "CG_TEST_UPSTREAM_KEY",
        "models": MODELS,
    }}}  # fmt: skip
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.fixture
async def start_sidecar(
    redis_url: str, store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[StartSidecar]:
    monkeypatch.setenv("CG_TEST_UPSTREAM_KEY", UPSTREAM_KEY)
    async with sidecars(redis_url, ADMIN_TOKEN) as start:
        yield start


@pytest.fixture
async def proxied(
    start_sidecar: StartSidecar,
    upstream: tuple[DemoUpstream, int],
    upstreams_file: Path,
    store: RedisStore,
) -> AsyncIterator[Proxied]:
    sidecar = await start_sidecar(proxy_upstreams=str(upstreams_file), proxy_port=0)
    async with aiohttp.ClientSession() as http:
        yield Proxied(sidecar=sidecar, upstream=upstream[0], http=http, store=store)
