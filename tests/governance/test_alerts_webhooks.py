"""Alerts end to end: 500 concurrent calls through two sidecars cross 50/80/100% of a team's
budget; the ledger delivers each alert, signed by the Standard Webhooks scheme, to a receiver
that verifies it with the ``standardwebhooks`` library and fails the first two attempts; a
receiver that keeps failing is disabled, and ``creditgate ledger webhooks replay`` sends it
what it missed."""

from __future__ import annotations

import asyncio
import sys
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from standardwebhooks import Webhook

from sidecar.ledger.webhooks import DISABLE_AFTER_FAILURES
from tests.governance.conftest import LEDGER_TOKEN, Deployment, until

pytestmark = [pytest.mark.redis, pytest.mark.postgres]

DAY = "from=2026-01-01T00:00:00Z&to=2030-01-01T00:00:00Z"
UNITS = {"input_tokens": 1000, "output_tokens": 1000}  # 0.00075 credits of gpt-4o-mini


class Receiver:
    """An endpoint on loopback: answers 500 to the first ``failures`` attempts of each
    message (all of them while ``broken``), then 200; keeps what verified."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.broken = False
        self.secret = ""
        self.tries: dict[str, int] = defaultdict(int)
        self.verified: dict[str, Any] = {}
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        payload = Webhook(self.secret).verify(body, dict(request.headers))  # raises if forged
        msg_id = request.headers["webhook-id"]
        self.tries[msg_id] += 1
        if self.broken or self.tries[msg_id] <= self.failures:
            return web.Response(status=500)
        self.verified[msg_id] = payload
        return web.Response(status=204)


async def _receiver(failures: int) -> AsyncIterator[Receiver]:
    receiver = Receiver(failures)
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    receiver.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    yield receiver
    await runner.cleanup()


@pytest.fixture
async def flaky() -> AsyncIterator[Receiver]:
    async for receiver in _receiver(failures=2):
        yield receiver


@pytest.fixture
async def dead() -> AsyncIterator[Receiver]:
    async for receiver in _receiver(failures=0):
        receiver.broken = True
        yield receiver


async def _run_calls(deployment: Deployment, count: int) -> None:
    async def one(i: int) -> None:
        port = deployment.sidecars[i % 2].port
        base = f"http://127.0.0.1:{port}/v1"
        reserve = {"customer": "acme", "feature": "chat", "model": "gpt-4o-mini", "team": "eng",
                   "units": UNITS, "idempotency_key": f"call-{i}"}  # fmt: skip
        async with deployment.http.post(f"{base}/reserve", json=reserve) as response:
            held = await response.json()
        assert held["allowed"], held
        commit = {"reservation_id": held["reservation_id"], "units": UNITS}
        async with deployment.http.post(f"{base}/commit", json=commit) as response:
            assert (await response.json())["result"] == "committed"

    await asyncio.gather(*(one(i) for i in range(count)))


async def test_500_concurrent_calls_fire_each_threshold_once_delivered_signed_after_retries(
    deployment: Deployment, flaky: Receiver, dead: Receiver
) -> None:
    admin = await deployment.token("acme", "admin")
    budget = {"scope": {"team": "eng"}, "period": "month", "limit": "0.3", "mode": "soft"}
    await deployment.operator("PUT", "/customers/acme/budgets", budget)
    status, registered = await deployment.call(
        "POST", deployment.ledger_url("/customers/acme/webhooks"), admin, {"url": flaky.url}
    )
    assert status == 200, registered
    flaky.secret = registered["secret"]
    assert flaky.secret.startswith("whsec_")
    status, operator = await deployment.call(
        "POST", deployment.ledger_url("/webhooks"), LEDGER_TOKEN, {"url": dead.url}
    )
    assert status == 200, operator
    dead.secret = operator["secret"]

    await _run_calls(deployment, 500)
    url = deployment.ledger_url(f"/customers/acme/alerts?{DAY}")

    async def three() -> list[dict[str, Any]] | None:
        _, answer = await deployment.call("GET", url, admin)
        return answer["alerts"] if len(answer["alerts"]) >= 3 else None

    alerts = await until(three, "three alerts in the ledger")
    assert sorted(a["rule"] for a in alerts) == ["100%", "50%", "80%"]  # each exactly once
    assert {(a["scope"], a["limit"], a["mode"]) for a in alerts} == {
        ("team:eng", "0.300000000", "soft")
    }

    async def delivered() -> bool:
        return len(flaky.verified) == 3

    await until(delivered, "every alert delivered")
    assert set(flaky.verified) == {a["id"] for a in alerts}
    for alert in alerts:
        payload = flaky.verified[alert["id"]]
        assert payload["type"] == "alert.threshold_crossed"
        assert payload["environment"] == "live"
        data = payload["data"]
        assert (data["rule"], data["scope"], data["limit"]) == (alert["rule"], "team:eng",
                                                                 "0.300000000")  # fmt: skip
        assert (data["used"], data["threshold"]) == (alert["used"], alert["threshold"])
        assert flaky.tries[alert["id"]] == 3  # two refused, then delivered
    log_url = deployment.ledger_url(f"/customers/acme/webhooks/{registered['id']}/deliveries")

    async def logged() -> dict[str, list[int | None]] | None:
        """The attempt is logged after the receiver answers: wait until all three are."""
        _, log = await deployment.call("GET", log_url, admin)
        by_alert: dict[str, list[int | None]] = defaultdict(list)
        for attempt in log["attempts"]:
            by_alert[attempt["alert_id"]].append(attempt["status"])
        return by_alert if sum(map(len, by_alert.values())) >= 9 else None

    by_alert = await until(logged, "every attempt logged")
    assert set(by_alert) == {a["id"] for a in alerts}
    assert all(statuses == [500, 500, 204] for statuses in by_alert.values()), by_alert

    # The operator's endpoint failed every attempt: disabled, and reported.
    hooks_url = deployment.ledger_url("/webhooks")

    async def disabled() -> dict[str, Any] | None:
        _, listed = await deployment.call("GET", hooks_url, LEDGER_TOKEN)
        hook = listed["endpoints"][0]
        return hook if hook["disabled_at"] else None

    hook = await until(disabled, "the failing endpoint disabled")
    registry = deployment.ledger.metrics.registry
    assert registry.get_sample_value("creditgate_ledger_webhook_endpoints_disabled_total") == 1
    delivered = {"result": "delivered"}
    assert registry.get_sample_value("creditgate_ledger_webhook_attempts_total", delivered) == 3
    assert f"{DISABLE_AFTER_FAILURES} attempts failed in a row" in hook["disabled_reason"]
    assert "secret" not in hook or hook["secret"] is None
    dead.broken = False
    replay = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sidecar.cli", "ledger", "webhooks", "replay",
        "--endpoint", operator["id"], "--database-url", deployment.ledger.database_url or "",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await replay.communicate()
    assert replay.returncode == 0
    assert b"enabled; 3 deliveries due now" in out

    async def caught_up() -> bool:
        return len(dead.verified) == 3

    await until(caught_up, "the replayed endpoint got every alert")

    # A scoped token sees its customer's endpoints, never the operator's nor another's.
    status, _ = await deployment.call("GET", hooks_url, admin)
    assert status == 403
    status, _ = await deployment.call(
        "GET", deployment.ledger_url("/customers/globex/webhooks"), admin
    )
    assert status == 403
    status, answer = await deployment.call(
        "POST", deployment.ledger_url("/customers/acme/webhooks"), admin, {"url": "ftp://x"}
    )
    assert (status, answer["error"]["field"]) == (400, "url")
