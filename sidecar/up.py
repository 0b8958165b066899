"""``creditgate up``: the whole thing locally on embedded defaults, in one command.

The example catalog, a Redis-compatible server started in a temporary folder (unless a URL is
given), demo customers with grants and budgets, an admin token, the OpenAI-compatible proxy in
front of a demo model provider (sidecar/proxy/demo.py) with a proxy key for acme; prints how
to use it, and stops everything it started on Ctrl-C.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml
from aiohttp import web

from sidecar.embedded import EmbeddedRedis
from sidecar.environment import LIVE
from sidecar.ledger.server import Ledger
from sidecar.ledger.settings import LedgerSettings
from sidecar.logs import safe_url
from sidecar.proxy.demo import DemoUpstream
from sidecar.server import Sidecar, serve
from sidecar.service import Service
from sidecar.settings import Settings
from sidecar.wire import (
    BudgetScope,
    GrantRequest,
    IssueProxyKeyRequest,
    IssueTokenRequest,
    SetBudgetRequest,
    UpsertCustomerRequest,
)

__all__ = ["EXAMPLE_CATALOG", "seed_demo", "up"]

EXAMPLE_CATALOG = Path(__file__).resolve().parent.parent / "policies" / "example.yaml"


async def seed_demo(service: Service) -> None:
    """Three demo customers; every step is idempotent, so re-running changes nothing."""
    await service.upsert_customer("acme", UpsertCustomerRequest(plan="pro"))
    await service.grant(
        "acme", GrantRequest(credit_type="paid", amount="100", idempotency_key="demo-acme-paid")
    )
    await service.set_budget("acme", SetBudgetRequest(limit="50", period="month"))
    await service.set_budget(
        "acme", SetBudgetRequest(limit="10", period="day", scope=BudgetScope(team="eng"))
    )
    await service.upsert_customer("globex", UpsertCustomerRequest(plan="enterprise"))
    await service.grant(
        "globex", GrantRequest(credit_type="paid", amount="1000", idempotency_key="demo-globex")
    )
    await service.upsert_customer("tinyco", UpsertCustomerRequest(plan="free"))


def _json(**fields: object) -> str:
    return json.dumps(fields, separators=(",", ":"))


def banner(
    sidecar: Sidecar, redis_note: str, ledger: Ledger, proxy_key: str, console_token: str
) -> str:
    api = f"http://127.0.0.1:{sidecar.port}"
    admin = f"http://127.0.0.1:{sidecar.admin_port}"
    token = sidecar.settings.admin_token
    reserve = _json(
        customer="acme", team="eng", user="u-17", agent="researcher", session="run-1",
        feature="chat", model="gpt-4o-mini", units={"input_tokens": 1200, "output_tokens": 800},
        idempotency_key="req-1",
    )  # fmt: skip
    commit = _json(
        reservation_id="PASTE_RESERVATION_ID", units={"input_tokens": 1180, "output_tokens": 312}
    )
    denied = _json(customer="acme", feature="chat", model="claude-sonnet-4", idempotency_key="r2")
    grant = _json(credit_type="promo", amount="5", idempotency_key="tour-1")
    auth = f"-H 'Authorization: Bearer {token}'"
    ledger_url = f"http://127.0.0.1:{ledger.port}"
    if ledger.postgres is not None:  # local and throwaway: in full, for a sandbox beside it
        ledger_db = f"{ledger.postgres.url}, embedded, deleted on exit"
    else:
        ledger_db = f"{safe_url(ledger.database_url or '')}, DATABASE_URL"
    environment = sidecar.settings.environment
    month = time.strftime("%Y-%m", time.gmtime())
    proxy = f"http://127.0.0.1:{sidecar.proxy_port}/v1"
    return f"""
Creditgate is up, in environment {environment}.
  API:     {api}
  Admin:   {admin}   (token: {token})
  gRPC:    127.0.0.1:{sidecar.grpc_port}   (admin 127.0.0.1:{sidecar.grpc_admin_port}, same token)
  Ledger:  http://127.0.0.1:{ledger.port}   (same token; PostgreSQL {ledger_db})
           gRPC corrections 127.0.0.1:{ledger.grpc_port} (same token)
  Proxy:   {proxy}   (OpenAI-compatible; proxy key for acme: {proxy_key})
  Console: {ledger_url}/console/login?token={console_token}
           (in a browser; acme's own admin token: usage, budgets, alerts, audit of acme only)
  Catalog: {sidecar.settings.catalog} (version {sidecar.service.catalog.version})
  Redis:   {sidecar.settings.redis} {redis_note}
  Demo customers: acme (pro, 100 paid credits, 50/month, team eng 10/day), globex
  (enterprise), tinyco (free)

Reserve before a model call, commit after it:
curl -s {api}/v1/reserve -d '{reserve}'
curl -s {api}/v1/commit -d '{commit}'
A denial (model not in acme's plan), decided without touching Redis:
curl -s {api}/v1/reserve -d '{denied}'
The balance, and an admin grant:
curl -s '{api}/v1/balance?customer=acme'
curl -s -X POST {admin}/admin/v1/customers/acme/grants {auth} -d '{grant}'

The same call with no integration code: the OpenAI SDK pointed at the proxy (a demo model
provider answers; put your provider in an upstreams file, --proxy-upstreams, in production):
python -c "import openai; c = openai.OpenAI(base_url='{proxy}', api_key='{proxy_key}'); \\
print(c.chat.completions.create(model='gpt-4o-mini', max_tokens=20, \\
messages=[{{'role': 'user', 'content': 'hi'}}]).usage)"

What the ledger recorded (it ingests within a second):
curl -s {ledger_url}/ledger/v1/customers/acme/balance {auth}
curl -s '{ledger_url}/ledger/v1/customers/acme/invoice?month={month}' {auth}

Ctrl-C stops everything this command started.
"""


async def _demo_upstream(port: int, folder: str) -> tuple[web.AppRunner, str]:
    """The demo model provider on loopback, and an upstreams file that sends every model of
    the example catalog to it."""
    runner = web.AppRunner(DemoUpstream().app())
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    bound = runner.addresses[0][1]
    models = list(yaml.safe_load(EXAMPLE_CATALOG.read_text())["models"])
    spec = {"upstreams": {"demo": {"base_url": f"http://127.0.0.1:{bound}/v1", "models": models}}}
    path = Path(folder) / "upstreams.yaml"
    path.write_text(yaml.safe_dump(spec))
    return runner, str(path)


async def up(*, redis: str | None, environment: str = LIVE, **ports: int) -> None:
    """Run until Ctrl-C; ``ports``: port, admin_port, grpc_port, grpc_admin_port, ledger_port,
    proxy_port, demo_upstream_port, ledger_grpc_port (0: any). The ledger uses DATABASE_URL
    when set, else an embedded PostgreSQL. Everything runs in ``environment``: beside a live
    ``up``, give its Redis and DATABASE_URL to run a sandbox on the same servers."""
    server = EmbeddedRedis() if redis is None else None
    note = f"(embedded, stopped on exit: {server.folder})" if server is not None else ""
    folder = tempfile.mkdtemp(prefix="creditgate-up-")
    demo, upstreams = await _demo_upstream(ports["demo_upstream_port"], folder)
    # A copy: an approved catalog proposal is written over it (ledger/proposals.py).
    catalog = Path(folder) / "catalog.yaml"
    catalog.write_text(EXAMPLE_CATALOG.read_text(encoding="utf-8"), encoding="utf-8")

    ledger: Ledger | None = None

    async def ready(sidecar: Sidecar) -> None:
        nonlocal ledger
        ledger = Ledger(
            LedgerSettings(
                catalog=str(catalog),
                redis=sidecar.settings.redis,
                environment=environment,
                database_url=os.environ.get("DATABASE_URL"),
                port=ports["ledger_port"],
                grpc_port=ports["ledger_grpc_port"],
                token=sidecar.settings.admin_token,
            )
        )
        await ledger.start()
        await seed_demo(sidecar.service)
        key = await sidecar.service.issue_proxy_key(
            "acme", IssueProxyKeyRequest(idempotency_key="demo", label="creditgate up", team="eng")
        )
        secret = key.secret or "(issued before: issue another through the admin API)"
        console = await sidecar.service.issue_token(
            "acme",
            IssueTokenRequest(
                idempotency_key=f"up-{secrets.token_hex(8)}", role="admin", label="creditgate up"
            ),
        )
        assert console.secret is not None  # a new idempotency key: a new token
        print(banner(sidecar, note, ledger, secret, console.secret), flush=True)

    try:
        settings = Settings(
            catalog=str(catalog),
            redis=server.url if server is not None else str(redis),
            environment=environment,
            port=ports["port"],
            admin_port=ports["admin_port"],
            grpc_port=ports["grpc_port"],
            grpc_admin_port=ports["grpc_admin_port"],
            admin_token=secrets.token_urlsafe(24),
            proxy_upstreams=upstreams,
            proxy_port=ports["proxy_port"],
        )
        await serve(settings, ready)
    finally:
        if ledger is not None:
            await ledger.stop()
        await demo.cleanup()
        shutil.rmtree(folder, ignore_errors=True)
        if server is not None:
            server.stop()
        print("Creditgate stopped.", file=sys.stderr, flush=True)
