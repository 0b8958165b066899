"""A sidecar process SIGKILLed with calls in its spool (answered in fallback while Redis was
unreachable), then started again on the same spool: nothing lost, nothing doubled."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bench.faults import FaultProxy
from sidecar.catalog import Catalog
from sidecar.embedded import free_port
from sidecar.service import Service
from sidecar.store.redis_store import RedisStore
from sidecar.wire import GrantRequest, UpsertCustomerRequest
from tests.conftest import ROOT
from tests.http.conftest import EXAMPLE

pytestmark = pytest.mark.redis

WAIT_S = 30.0
"""How long a start or a drain may take; only a bug takes this long."""
TICKET = {"customer": "acme", "feature": "support_agent", "units": {"tickets_resolved": 1}}


async def _start(redis: str, spool: Path, port: int) -> asyncio.subprocess.Process:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CREDITGATE_")}
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sidecar.cli", "serve", "--catalog", str(EXAMPLE),
        "--redis", redis, "--port", str(port), "--grpc", "false", "--spool-dir", str(spool),
        "--redis-deadline-ms", "200", "--redis-timeout-ms", "200",
        cwd=ROOT, env=environ, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip


async def _until_ready(http: aiohttp.ClientSession, url: str) -> None:
    async with asyncio.timeout(WAIT_S):
        while True:
            try:
                async with http.get(f"{url}/readyz") as answer:
                    if answer.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)


async def _post(http: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> Any:
    async with http.post(url, json=body) as answer:
        assert answer.status == 200, await answer.text()
        return await answer.json()


async def _spool_entries(http: aiohttp.ClientSession, url: str) -> float:
    async with http.get(f"{url}/metrics") as answer:
        for line in (await answer.text()).splitlines():
            if line.startswith("creditgate_spool_entries "):
                return float(line.split()[1])
    raise AssertionError("no creditgate_spool_entries metric")


async def test_a_killed_sidecar_replays_its_spool_at_restart(
    proxy: FaultProxy, store: RedisStore, catalog: Catalog, tmp_path: Path
) -> None:
    admin = Service(store, catalog)  # the wall clock, as the sidecar process uses
    await admin.upsert_customer("acme", UpsertCustomerRequest(plan="pro"))
    await admin.grant("acme", GrantRequest(credit_type="paid", amount="10", idempotency_key="k"))
    before = await admin.balance("acme")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = await _start(proxy.url, tmp_path, port)
    try:
        async with aiohttp.ClientSession() as http:
            await _until_ready(http, url)
            warm = await _post(http, f"{url}/v1/reserve", {**TICKET, "idempotency_key": "warm"})
            assert warm["decided_by"] == "store"  # acme is read: known for fallback
            proxy.down(True)
            rids = []
            for i in range(3):
                held = await _post(
                    http, f"{url}/v1/reserve", {**TICKET, "idempotency_key": f"t-{i}"}
                )
                assert (held["allowed"], held["decided_by"]) == (True, "fallback")
                rids.append(held["reservation_id"])
            for rid in rids[:2]:
                done = await _post(
                    http, f"{url}/v1/commit",
                    {"reservation_id": rid, "units": {"tickets_resolved": 1}},
                )  # fmt: skip
                assert (done["result"], done["decided_by"]) == ("committed", "fallback")
            os.kill(process.pid, signal.SIGKILL)
            await process.wait()
            proxy.down(False)

            process = await _start(proxy.url, tmp_path, port)
            await _until_ready(http, url)
            async with asyncio.timeout(WAIT_S):
                while await _spool_entries(http, url):
                    await asyncio.sleep(0.05)
            again = await _post(
                http, f"{url}/v1/commit",
                {"reservation_id": rids[0], "units": {"tickets_resolved": 1}},
            )  # fmt: skip
            assert (again["result"], again["cost"]) == ("already_committed", "0.990000000")
            last = await _post(
                http, f"{url}/v1/commit",
                {"reservation_id": rids[2], "units": {"tickets_resolved": 1}},
            )  # fmt: skip
            assert (last["result"], last["decided_by"]) == ("committed", "store")
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()
    after = await admin.balance("acme")
    spent = sum(Decimal(b.amount) for b in before.buckets) - sum(
        Decimal(b.amount) for b in after.buckets
    )
    assert spent == 3 * Decimal("0.99")  # three tickets, each once
    entries = await store.client.xrange(store.layout.stream_of("acme"))
    debits = [f[b"event_id"].decode() for _, f in entries if f[b"kind"] == b"debit"]
    assert sorted(debits) == sorted(rids)
