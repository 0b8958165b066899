"""Sandboxes: a ``sandbox`` sidecar and ledger on the same Redis and PostgreSQL as live ones,
seeded by ``creditgate environment copy``, with the same operator tokens. Every route of the
sandbox's sidecar (API, admin, proxy) and ledger (queries, corrections, webhooks, pricing) is
called, naming live's customer and live's objects by id and presenting live's credentials:
nothing of live is read (no live amount or secret in any answer) and nothing is moved (every
live Redis key and every live table is byte-for-byte as before). Every answer names its
environment."""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import grpc
import msgspec
import pytest
import yaml
from aiohttp import web
from mcp import Client as MCPClient
from mcp import StdioServerParameters

from sidecar.catalog import load_catalog
from sidecar.embedded import EmbeddedRedis
from sidecar.environment import HEADER, METADATA
from sidecar.ledger.server import Ledger
from sidecar.ledger.settings import LedgerSettings
from sidecar.proxy.demo import DemoUpstream
from sidecar.rpc.gen.creditgate.v1 import creditgate_pb2 as pb
from sidecar.rpc.gen.creditgate.v1 import creditgate_pb2_grpc as pb_grpc
from sidecar.sandbox import copy_catalog, copy_environment
from sidecar.server import Sidecar
from sidecar.service import Service
from sidecar.store.redis_store import RedisStore
from sidecar.wire import GrantRequest, SetBudgetRequest, UpsertCustomerRequest
from tests.conftest import EXAMPLE, sidecars
from tests.governance.conftest import ADMIN_TOKEN, LEDGER_TOKEN, until
from tests.governance.test_proposals import ROOT
from tests.ledger.conftest import database, postgres  # noqa: F401 - fixtures
from tests.ledger.test_cli import creditgate

pytestmark = [pytest.mark.redis, pytest.mark.postgres]

LIVE_GRANT = "777.123456789"
"""Live acme's paid grant: no sandbox answer may show it."""
WINDOW = "from=2020-01-01T00:00:00Z&to=2040-01-01T00:00:00Z"
CHAT = {"model": "gpt-4o-mini", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
RESERVE = {
    "customer": "acme", "team": "eng", "feature": "chat", "model": "gpt-4o-mini",
    "units": {"input_tokens": 1000, "output_tokens": 500},
}  # fmt: skip


def _routes(app: web.Application) -> set[tuple[str, str]]:
    """(method, path) of every route of ``app`` and its sub-applications (whose resources
    carry their prefix once added)."""
    found = set()
    for resource in app.router.resources():
        if "app" in (info := resource.get_info()):
            found |= _routes(info["app"])
            continue
        found |= {(r.method, resource.canonical) for r in resource if r.method != "HEAD"}
    return found


async def _redis_snapshot(store: RedisStore) -> dict[bytes, bytes]:
    """Every live key (no environment head) and its serialized value."""
    keys = [key async for key in store.client.scan_iter(count=1000)]
    return {
        key: await store.client.dump(key) or b""
        for key in sorted(keys)
        if not key.startswith(b"cg@")
    }


async def _pg_snapshot(url: str) -> dict[str, str]:
    """Every live table (schema public): its rows' digest."""
    connection = await asyncpg.connect(url)
    try:
        tables = await connection.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
        )
        out = {}
        for row in tables:
            name = row["tablename"]
            rows = await connection.fetch(f'SELECT t::text AS r FROM public."{name}" t')
            digest = hashlib.sha256("\n".join(sorted(r["r"] for r in rows)).encode())
            out[name] = f"{len(rows)}:{digest.hexdigest()}"
        return out
    finally:
        await connection.close()


@dataclass
class Live:
    """What live holds that a sandbox must not reach."""

    reservation: str = ""
    event: str = ""
    proxy_key: str = ""
    proxy_key_id: str = ""
    admin_token: str = ""
    admin_token_id: str = ""
    webhook: str = ""
    pricing_token: str = ""
    proposal: str = ""
    secrets: list[str] = field(default_factory=list)


@dataclass
class Client:
    http: aiohttp.ClientSession
    answers: list[tuple[str, int, str, str | None]] = field(default_factory=list)
    """(what was called, status, body, environment header) of every call."""

    async def call(
        self, method: str, url: str, token: str | None, body: Any = None
    ) -> tuple[int, Any]:
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        async with self.http.request(
            method, url, json=body, headers=headers, allow_redirects=False
        ) as response:
            text = await response.text()
            self.answers.append(
                (f"{method} {url}", response.status, text, response.headers.get(HEADER))
            )
            kind = response.headers.get("Content-Type", "")
            return response.status, (
                await response.json() if kind.startswith("application/json") else text
            )


@pytest.fixture
async def upstreams(tmp_path: Path) -> AsyncIterator[Path]:
    runner = web.AppRunner(DemoUpstream(words=5).app())
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    path = tmp_path / "upstreams.yaml"
    spec = {"upstreams": {"demo": {
        "base_url": f"http://127.0.0.1:{runner.addresses[0][1]}/v1", "models": ["gpt-4o-mini"],
    }}}  # fmt: skip
    path.write_text(yaml.safe_dump(spec))
    yield path
    await runner.cleanup()


async def _seed_live(client: Client, sidecar: Sidecar, ledger: Ledger, catalog: Path) -> Live:
    live = Live()
    admin = f"http://127.0.0.1:{sidecar.admin_port}/admin/v1/customers/acme"
    api = f"http://127.0.0.1:{sidecar.port}/v1"
    ledger_url = f"http://127.0.0.1:{ledger.port}/ledger/v1"

    async def ok(method: str, url: str, body: Any = None, token: str = ADMIN_TOKEN) -> Any:
        status, answer = await client.call(method, url, token, body)
        assert status == 200, answer
        return answer

    await ok("PUT", admin, {"plan": "pro"})
    await ok("POST", f"{admin}/grants", {"credit_type": "paid", "amount": LIVE_GRANT,
                                         "idempotency_key": "live-grant"})  # fmt: skip
    await ok("PUT", f"{admin}/budgets", {"limit": "50", "scope": {"team": "eng"}})
    held = await ok("POST", f"{api}/reserve", RESERVE | {"idempotency_key": "live-1"})
    units = {"input_tokens": 900, "output_tokens": 400}
    await ok("POST", f"{api}/commit", {"reservation_id": held["reservation_id"], "units": units})
    live.reservation = (
        await ok("POST", f"{api}/reserve", RESERVE | {"idempotency_key": "live-2"})
    )["reservation_id"]
    key = await ok("POST", f"{admin}/proxy-keys", {"idempotency_key": "live-key"})
    live.proxy_key, live.proxy_key_id = key["secret"], key["key"]["id"]
    token = await ok("POST", f"{admin}/tokens", {"idempotency_key": "live-tok", "role": "admin"})
    live.admin_token, live.admin_token_id = token["secret"], token["token"]["id"]
    hook = await ok("POST", f"{ledger_url}/customers/acme/webhooks",
                    {"url": "http://127.0.0.1:9/hook"}, LEDGER_TOKEN)  # fmt: skip
    live.webhook = hook["id"]
    pricing = await ok("POST", f"{ledger_url}/pricing/tokens",
                       {"idempotency_key": "live-agent", "name": "agent", "role": "agent"},
                       LEDGER_TOKEN)  # fmt: skip
    live.pricing_token = pricing["secret"]
    proposal = await ok("POST", f"{ledger_url}/pricing/proposals",
                        {"idempotency_key": "live-p", "catalog": catalog.read_text(),
                         "rationale": "unchanged"}, live.pricing_token)  # fmt: skip
    live.proposal = proposal["id"]
    live.secrets = [live.proxy_key, live.admin_token, live.pricing_token, hook["secret"]]

    async def stored() -> str | None:
        _, usage = await client.call(
            "GET", f"{ledger_url}/export?{WINDOW}&customer=acme", LEDGER_TOKEN
        )
        return usage.split('"event_id":"')[1].split('"')[0] if "event_id" in usage else None

    live.event = await until(stored, "the live commit in the live ledger")
    return live


def _calls(live: Live, sandbox_key: str) -> dict[tuple[str, str], list[tuple[str, Any, Any]]]:
    """For each route: (path, token, body) calls; ``{customer}`` is acme, ids are live's."""
    customer = "/admin/v1/customers/acme"
    base = "/ledger/v1/customers/acme"
    bucket = {"credit_type": "paid", "amount": "1", "idempotency_key": "sb-grant"}
    refund = {"event_id": live.event, "idempotency_key": "sb-refund", "reason": "try live"}
    adjust = {"amount": "1", "credit_type": "paid", "idempotency_key": "sb-adj", "reason": "x"}
    release = {"reservation_id": live.reservation}
    commit = release | {"units": {"input_tokens": 1, "output_tokens": 1}}
    proposal = {"idempotency_key": "sb-p", "catalog": EXAMPLE.read_text(), "rationale": "x"}
    hook = {"url": "http://127.0.0.1:9/sandbox"}
    a, lt, la, lp = ADMIN_TOKEN, LEDGER_TOKEN, live.admin_token, live.pricing_token
    return {
        ("POST", "/v1/check"): [("/v1/check", None, {"customer": "acme", "feature": "chat"})],
        ("POST", "/v1/reserve"): [("/v1/reserve", None, RESERVE | {"idempotency_key": "live-2"})],
        ("POST", "/v1/commit"): [("/v1/commit", None, commit)],
        ("POST", "/v1/release"): [("/v1/release", None, release)],
        ("GET", "/v1/balance"): [("/v1/balance?customer=acme", None, None)],
        ("GET", "/v1/budgets"): [("/v1/budgets?customer=acme", None, None)],
        ("GET", "/healthz"): [("/healthz", None, None)],
        ("GET", "/readyz"): [("/readyz", None, None)],
        ("GET", "/metrics"): [("/metrics", None, None)],
        ("PUT", "/admin/v1/customers/{customer}"): [
            (customer, a, {"plan": "pro"}),
            (customer, la, {"plan": "free"}),
        ],
        ("GET", "/admin/v1/customers/{customer}"): [(customer, a, None), (customer, la, None)],
        ("POST", "/admin/v1/customers/{customer}/grants"): [(f"{customer}/grants", a, bucket)],
        ("PUT", "/admin/v1/customers/{customer}/budgets"): [
            (f"{customer}/budgets", a, {"limit": "9"}),
            (f"{customer}/budgets", la, {"limit": "1"}),
        ],
        ("PUT", "/admin/v1/customers/{customer}/alerts"): [
            (f"{customer}/alerts", a, {"thresholds": ["50%"]}),
            (f"{customer}/alerts", la, {"thresholds": ["60%"]}),
        ],
        ("GET", "/admin/v1/customers/{customer}/alerts"): [(f"{customer}/alerts", a, None)],
        ("POST", "/admin/v1/customers/{customer}/proxy-keys"): [
            (f"{customer}/proxy-keys", a, {"idempotency_key": "live-key"})
        ],
        ("GET", "/admin/v1/customers/{customer}/proxy-keys"): [(f"{customer}/proxy-keys", a, None)],
        ("DELETE", "/admin/v1/customers/{customer}/proxy-keys/{id}"): [
            (f"{customer}/proxy-keys/{live.proxy_key_id}", a, None)
        ],
        ("POST", "/admin/v1/customers/{customer}/tokens"): [
            (f"{customer}/tokens", a, {"idempotency_key": "live-tok", "role": "viewer"})
        ],
        ("GET", "/admin/v1/customers/{customer}/tokens"): [(f"{customer}/tokens", a, None)],
        ("DELETE", "/admin/v1/customers/{customer}/tokens/{id}"): [
            (f"{customer}/tokens/{live.admin_token_id}", a, None)
        ],
        ("POST", "/v1/chat/completions"): [
            ("/v1/chat/completions", live.proxy_key, CHAT),
            ("/v1/chat/completions", sandbox_key, CHAT),
        ],
        ("POST", "/v1/embeddings"): [
            ("/v1/embeddings", live.proxy_key, {"model": "gpt-4o-mini", "input": "hi"})
        ],
        ("GET", f"{base.replace('acme', '{customer}')}/balance"): [
            (f"{base}/balance", lt, None),
            (f"{base}/balance", la, None),
        ],
        ("GET", "/ledger/v1/customers/{customer}/usage"): [(f"{base}/usage?{WINDOW}", lt, None)],
        ("GET", "/ledger/v1/customers/{customer}/invoice"): [
            (f"{base}/invoice?month=" + _month(), lt, None)
        ],
        ("GET", "/ledger/v1/customers/{customer}/audit"): [(f"{base}/audit?{WINDOW}", lt, None)],
        ("GET", "/ledger/v1/customers/{customer}/alerts"): [(f"{base}/alerts?{WINDOW}", lt, None)],
        ("GET", "/ledger/v1/customers/{customer}/budgets"): [(f"{base}/budgets", lt, None)],
        ("POST", "/ledger/v1/customers/{customer}/refunds"): [(f"{base}/refunds", lt, refund)],
        ("POST", "/ledger/v1/customers/{customer}/adjustments"): [
            (f"{base}/adjustments", lt, adjust),
            (f"{base}/adjustments", la, adjust),
        ],
        ("GET", "/console"): [("/console?customer=acme", lt, None)],
        ("GET", "/console/login"): [(f"/console/login?token={live.admin_token}", None, None)],
        ("POST", "/ledger/v1/customers/{customer}/webhooks"): [(f"{base}/webhooks", lt, hook)],
        ("GET", "/ledger/v1/customers/{customer}/webhooks"): [(f"{base}/webhooks", lt, None)],
        ("DELETE", "/ledger/v1/customers/{customer}/webhooks/{id}"): [
            (f"{base}/webhooks/{live.webhook}", lt, None)
        ],
        ("GET", "/ledger/v1/customers/{customer}/webhooks/{id}/deliveries"): [
            (f"{base}/webhooks/{live.webhook}/deliveries", lt, None)
        ],
        ("POST", "/ledger/v1/webhooks"): [("/ledger/v1/webhooks", lt, hook)],
        ("GET", "/ledger/v1/webhooks"): [("/ledger/v1/webhooks", lt, None)],
        ("DELETE", "/ledger/v1/webhooks/{id}"): [(f"/ledger/v1/webhooks/{live.webhook}", lt, None)],
        ("GET", "/ledger/v1/webhooks/{id}/deliveries"): [
            (f"/ledger/v1/webhooks/{live.webhook}/deliveries", lt, None)
        ],
        ("GET", "/ledger/v1/export"): [(f"/ledger/v1/export?{WINDOW}", lt, None)],
        ("GET", "/ledger/v1/status"): [("/ledger/v1/status", lt, None)],
        ("GET", "/ledger/v1/pricing/catalog"): [
            ("/ledger/v1/pricing/catalog", lt, None),
            ("/ledger/v1/pricing/catalog", lp, None),
        ],
        ("POST", "/ledger/v1/pricing/diff"): [
            ("/ledger/v1/pricing/diff", lt, {"catalog": EXAMPLE.read_text()})
        ],
        ("POST", "/ledger/v1/pricing/simulate"): [
            ("/ledger/v1/pricing/simulate", lt, {"catalog": EXAMPLE.read_text()})
        ],
        ("GET", "/ledger/v1/pricing/margin"): [(f"/ledger/v1/pricing/margin?{WINDOW}", lt, None)],
        ("POST", "/ledger/v1/pricing/proposals"): [
            ("/ledger/v1/pricing/proposals", lt, proposal),
            ("/ledger/v1/pricing/proposals", lp, proposal),
        ],
        ("GET", "/ledger/v1/pricing/proposals"): [("/ledger/v1/pricing/proposals", lt, None)],
        ("GET", "/ledger/v1/pricing/proposals/{id}"): [
            (f"/ledger/v1/pricing/proposals/{live.proposal}", lt, None)
        ],
        ("POST", "/ledger/v1/pricing/proposals/{id}/approve"): [
            (f"/ledger/v1/pricing/proposals/{live.proposal}/approve", lt, None)
        ],
        ("POST", "/ledger/v1/pricing/rollback"): [
            ("/ledger/v1/pricing/rollback", lt, {"idempotency_key": "sb-rollback"})
        ],
        ("POST", "/ledger/v1/pricing/tokens"): [
            (
                "/ledger/v1/pricing/tokens",
                lt,
                {"idempotency_key": "live-agent", "name": "agent", "role": "agent"},
            )
        ],
        ("GET", "/ledger/v1/pricing/actions"): [("/ledger/v1/pricing/actions", lt, None)],
    }


def _month() -> str:
    return time.strftime("%Y-%m", time.gmtime())


async def test_a_sandbox_beside_live_cannot_read_or_move_live_state_on_any_route(
    tmp_path: Path,
    redis_server: EmbeddedRedis,
    store: RedisStore,
    database: str,  # noqa: F811 - a fixture
    upstreams: Path,
) -> None:
    live_file, sandbox_file = tmp_path / "live.yaml", tmp_path / "sandbox.yaml"
    live_file.write_text(EXAMPLE.read_text())
    settings = {"redis": redis_server.url, "database_url": database, "port": 0,
                "token": LEDGER_TOKEN, "grpc_port": 0, "poll_ms": 10}  # fmt: skip
    live_ledger = Ledger(LedgerSettings(catalog=str(live_file), **settings))
    await live_ledger.start()
    sandbox_ledger: Ledger | None = None
    try:
        async with (
            sidecars(redis_server.url, ADMIN_TOKEN) as start,
            aiohttp.ClientSession() as http,
        ):
            client = Client(http)
            live_sidecar = await start(
                catalog=str(live_file), proxy_upstreams=str(upstreams), proxy_port=0
            )
            live = await _seed_live(client, live_sidecar, live_ledger, live_file)
            await live_ledger.stop()  # its heartbeats and checks write; the sidecar stays up
            redis_before = await _redis_snapshot(store)
            tables_before = await _pg_snapshot(database)

            copy_catalog(str(live_file), str(sandbox_file))
            copied = await copy_environment(
                redis_server.url, "live", "sandbox", load_catalog(sandbox_file), balances=False
            )
            assert (copied.customers, copied.budgets, copied.grants) == (1, 1, 0)
            sandbox_ledger = Ledger(
                LedgerSettings(catalog=str(sandbox_file), environment="sandbox", **settings)
            )
            await sandbox_ledger.start()
            sandbox = await start(
                catalog=str(sandbox_file), environment="sandbox",
                proxy_upstreams=str(upstreams), proxy_port=0,
            )  # fmt: skip
            admin = f"http://127.0.0.1:{sandbox.admin_port}/admin/v1/customers/acme"
            status, state = await client.call("GET", admin, ADMIN_TOKEN)
            assert status == 200, state
            assert state["plan"] == "pro"  # copied, with its budget
            assert [(b["scope"], b["limit"]) for b in state["budgets"]] == [
                ("team:eng", "50.000000000")
            ]
            assert LIVE_GRANT not in str(state["buckets"])  # balances stay in live
            status, key = await client.call(
                "POST", f"{admin}/proxy-keys", ADMIN_TOKEN, {"idempotency_key": "sb-key"}
            )
            assert status == 200, key

            apps = [runner.app for runner in (*sandbox._runners, *sandbox_ledger._runners)]
            routes = set().union(*(_routes(app) for app in apps))
            calls = _calls(live, key["secret"])
            assert routes == set(calls), (routes - set(calls), set(calls) - routes)
            ports = {
                **dict.fromkeys(("/v1/chat", "/v1/embeddings"), sandbox.proxy_port),
                "/admin/": sandbox.admin_port,
                "/ledger/": sandbox_ledger.port,
                "/console": sandbox_ledger.port,
            }
            client.answers.clear()
            refused: dict[str, int] = {}
            for (method, _), attempts in sorted(calls.items()):
                for path, token, body in attempts:
                    port = next((p for head, p in ports.items() if path.startswith(head)),
                                sandbox.port)  # fmt: skip
                    status, _ = await client.call(
                        method, f"http://127.0.0.1:{port}{path}", token, body
                    )
                    refused[f"{method} {path.split('?')[0]}"] = status

            for what, status, text, environment in client.answers:
                assert status < 500, (what, text)  # refused or served, never a bug
                assert environment == "sandbox", what
                assert LIVE_GRANT not in text, what
                assert not any(secret in text for secret in live.secrets), what
            # Live's objects do not exist in the sandbox, and live's credentials open nothing.
            assert refused["POST /v1/commit"] == refused["POST /v1/release"] == 404
            assert refused[f"POST {_base()}/refunds"] == 404
            named = [f"/proxy-keys/{live.proxy_key_id}", f"/tokens/{live.admin_token_id}"]
            for path in named:
                assert refused[f"DELETE /admin/v1/customers/acme{path}"] == 404
            for path in (
                f"{_base()}/webhooks/{live.webhook}",
                f"/ledger/v1/webhooks/{live.webhook}",
            ):
                assert refused[f"DELETE {path}"] == refused[f"GET {path}/deliveries"] == 404
            proposal = f"/ledger/v1/pricing/proposals/{live.proposal}"
            assert refused[f"GET {proposal}"] == refused[f"POST {proposal}/approve"] == 404
            assert refused["POST /v1/embeddings"] == 401  # live's proxy key
            assert refused["GET /console/login"] == 401  # live's admin token
            assert refused["GET /ledger/v1/pricing/catalog"] == 401  # live's pricing token
            assert refused["POST /ledger/v1/pricing/proposals"] == 401
            await _grpc_sandbox_only(sandbox, sandbox_ledger, live)
            exported = await until(
                lambda: _exported(client, sandbox_ledger), "the sandbox's call in its ledger"
            )
            assert {row["environment"] for row in exported} == {"sandbox"}
            assert live.event not in {row["event_id"] for row in exported}  # its own calls

            assert await _redis_snapshot(store) == redis_before
            assert await _pg_snapshot(database) == tables_before
    finally:
        if sandbox_ledger is not None:
            await sandbox_ledger.stop()
        await live_ledger.stop()


async def _exported(client: Client, ledger: Ledger) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{ledger.port}/ledger/v1/export?{WINDOW}"
    _, text = await client.call("GET", url, LEDGER_TOKEN)
    return [msgspec.json.decode(line) for line in text.splitlines()]


def _base() -> str:
    return "/ledger/v1/customers/acme"


async def _grpc_sandbox_only(sandbox: Sidecar, ledger: Ledger, live: Live) -> None:
    """Over gRPC too: the sandbox's balance, live's objects not found and live's pricing
    token refused; every answer, errors included, named sandbox in its trailing metadata."""
    async with (
        grpc.aio.insecure_channel(f"127.0.0.1:{sandbox.grpc_port}") as public,
        grpc.aio.insecure_channel(f"127.0.0.1:{ledger.grpc_port}") as corrections,
    ):
        operator = (("authorization", f"Bearer {LEDGER_TOKEN}"),)
        calls = [
            (pb_grpc.CreditgateServiceStub(public).GetBalance(
                pb.GetBalanceRequest(customer="acme")), None),
            (pb_grpc.CreditgateServiceStub(public).Commit(
                pb.CommitRequest(reservation_id=live.reservation, units={"input_tokens": 1})),
             grpc.StatusCode.NOT_FOUND),
            (pb_grpc.CreditgateLedgerServiceStub(corrections).Refund(
                pb.RefundRequest(customer="acme", idempotency_key="sb-grpc", reason="x",
                                 event_id=live.event), metadata=operator),
             grpc.StatusCode.NOT_FOUND),
            (pb_grpc.CreditgatePricingServiceStub(corrections).SubmitProposal(
                pb.SubmitProposalRequest(catalog=EXAMPLE.read_text(), rationale="x",
                                         idempotency_key="sb-grpc"),
                metadata=(("authorization", f"Bearer {live.pricing_token}"),)),
             grpc.StatusCode.UNAUTHENTICATED),
            (pb_grpc.CreditgatePricingServiceStub(corrections).ApproveProposal(
                pb.ApproveProposalRequest(id="cp_live"),
                metadata=(("authorization", f"Bearer {live.pricing_token}"),)),
             grpc.StatusCode.UNAUTHENTICATED),
            (pb_grpc.CreditgatePricingServiceStub(corrections).RollbackCatalog(
                pb.RollbackCatalogRequest(idempotency_key="sb-grpc"),
                metadata=(("authorization", f"Bearer {live.pricing_token}"),)),
             grpc.StatusCode.UNAUTHENTICATED),
        ]  # fmt: skip
        for call, refused in calls:
            if refused is None:
                assert LIVE_GRANT not in str(await call)
            else:
                with pytest.raises(grpc.aio.AioRpcError) as error:
                    await call
                assert error.value.code() == refused, error.value
            assert (METADATA, "sandbox") in tuple(await call.trailing_metadata())


async def test_environment_copy_brings_balances_only_when_asked_and_once(
    tmp_path: Path, redis_server: EmbeddedRedis, store: RedisStore
) -> None:
    catalog = load_catalog(EXAMPLE)
    live = Service(store, catalog)
    await live.upsert_customer("acme", UpsertCustomerRequest(plan="pro"))
    await live.grant("acme", GrantRequest(credit_type="paid", amount=LIVE_GRANT,
                                          idempotency_key="g1"))  # fmt: skip
    await live.set_budget("acme", SetBudgetRequest(limit="5", period="day"))
    # As if acme's grants of this month were not issued yet: a read of live that issued them
    # (a balance through the service) would write live.
    await store.client.hset(store.layout.customer_key("acme"), "granted_month", "m200001")
    live_keys = await _redis_snapshot(store)
    target = tmp_path / "sandbox.yaml"
    args = ("environment", "copy", "--to", "sandbox", "--redis", redis_server.url,
            "--catalog", str(EXAMPLE), "--catalog-to", str(target))  # fmt: skip

    code, out, err = await creditgate(*args)
    assert code == 0, err
    assert "copied 1 customers, 1 budgets and 0 balance grants from live to sandbox" in out
    assert target.read_bytes() == EXAMPLE.read_bytes()
    sandbox = RedisStore(redis_server.url, environment="sandbox")
    try:
        await sandbox.agree_layout()
        copied = Service(sandbox, catalog)
        plain = await copied.balance("acme")
        assert (plain.plan, plain.budgets[0].limit) == ("pro", "5.000000000")
        assert LIVE_GRANT not in str(plain.buckets)
        for _ in range(2):  # a second copy grants nothing again
            code, out, err = await creditgate(*args, "--balances")
            assert code == 0, err
        mine = await copied.balance("acme")
        paid = [b.amount for b in mine.buckets if b.credit_type == "paid"]
        assert paid == [LIVE_GRANT]
        assert {b.amount for b in mine.buckets if b.credit_type == "included"} == {"20.000000000"}
        assert len(mine.buckets) == 2  # the sandbox's own allowance, not live's as well
        assert await _redis_snapshot(store) == live_keys  # live only read, nothing issued
    finally:
        await sandbox.close()

    for wrong, message in ((("--to", "live", "--from", "sandbox"), "--to: live is never written"),
                           (("--to", "qa", "--from", "nosuch"), "--from: environment 'nosuch' "
                            "has no deployment on this Redis")):  # fmt: skip
        code, _, err = await creditgate("environment", "copy", *wrong, "--redis",
                                        redis_server.url, "--catalog", str(EXAMPLE))  # fmt: skip
        assert (code, message in err) == (2, True), err

    code, _, err = await creditgate("environment", "copy", "--to", "Sand-Box", "--redis",
                                    redis_server.url, "--catalog", str(EXAMPLE))  # fmt: skip
    assert code == 2
    assert "--to: 'Sand-Box' is not an environment name" in err


async def test_the_mcp_sandbox_tool_runs_calls_in_a_sandbox_and_refuses_live(
    redis_server: EmbeddedRedis, store: RedisStore
) -> None:
    async with sidecars(redis_server.url, ADMIN_TOKEN) as start:
        live, sandbox = await start(), await start(environment="sandbox")
        for sidecar in (live, sandbox):
            await sidecar.service.upsert_customer("acme", UpsertCustomerRequest(plan="pro"))
        live_before = await live.service.balance("acme")
        call = {"customer": "acme", "model": "gpt-4o-mini", "idempotency_key": "mcp-sb-1",
                "units": {"input_tokens": 1000, "output_tokens": 1000}}  # fmt: skip

        async def run(url: str) -> Any:
            params = StdioServerParameters(
                command=sys.executable, args=["-m", "sidecar.cli", "mcp"], cwd=str(ROOT),
                env={"CREDITGATE_LEDGER_URL": "http://127.0.0.1:9", "CREDITGATE_SANDBOX_URL": url,
                     "CREDITGATE_PRICING_TOKEN": "the ledger is not called"},
            )  # fmt: skip
            async with MCPClient(params) as client:
                return await client.call_tool("sandbox_call", call)

        refused = await run(f"http://127.0.0.1:{live.port}")
        assert refused.is_error
        assert "answers as live, not a sandbox" in str(refused.content)
        assert await live.service.balance("acme") == live_before  # not even a hold

        ran = await run(f"http://127.0.0.1:{sandbox.port}")
        assert not ran.is_error, ran.content
        answer = ran.structured_content or {}
        assert answer["reserve"]["allowed"] is True
        assert answer["commit"]["cost"] == "0.000750000"  # gpt-4o-mini: 0.15 + 0.60 per M
        assert await live.service.balance("acme") == live_before
        spent = await sandbox.service.balance("acme")
        assert spent.balance != live_before.balance
