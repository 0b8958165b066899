"""The console in a real headless browser (Debian's chromium): a scoped token's page shows its
customer's teams' usage and budgets and nothing of another customer; a team's token, its team
only. A screenshot of the page is saved in the test's folder."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from tests.governance.conftest import Deployment
from tests.governance.test_alerts_webhooks import UNITS

pytestmark = [pytest.mark.redis, pytest.mark.postgres]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
BROWSER_TIMEOUT_S = 120.0
"""A cold browser start on a busy machine; only a hung browser takes this long."""


async def _browse(url: str, profile: Path, *args: str) -> bytes:
    """Run headless chromium on ``url`` with ``args``; its stdout."""
    assert CHROMIUM, "chromium is not installed: make test installs it (apt-get install chromium)"
    process = await asyncio.create_subprocess_exec(
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", f"--user-data-dir={profile}", "--window-size=1100,1900", *args, url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    async with asyncio.timeout(BROWSER_TIMEOUT_S):
        out, _ = await process.communicate()
    assert process.returncode == 0
    return out


async def _spend(deployment: Deployment, customer: str, team: str, calls: int) -> None:
    base = f"http://127.0.0.1:{deployment.sidecars[0].port}/v1"
    for i in range(calls):
        reserve = {"customer": customer, "feature": "chat", "model": "gpt-4o-mini", "team": team,
                   "units": UNITS, "idempotency_key": f"{customer}-{team}-{i}"}  # fmt: skip
        async with deployment.http.post(f"{base}/reserve", json=reserve) as response:
            held = await response.json()
        commit = {"reservation_id": held["reservation_id"], "units": UNITS}
        async with deployment.http.post(f"{base}/commit", json=commit) as response:
            assert (await response.json())["result"] == "committed"


async def _ingested(deployment: Deployment, events: int) -> None:
    async with asyncio.timeout(30):
        while True:
            async with deployment.ledger.pool.acquire() as db:  # type: ignore[union-attr]
                if await db.fetchval("SELECT count(*) FROM usage_events") >= events:
                    return
            await asyncio.sleep(0.05)


async def test_the_console_shows_the_tokens_customer_and_nothing_of_another(
    deployment: Deployment, tmp_path: Path
) -> None:
    for customer, team, limit in (("acme", "eng", "0.002"), ("acme", "ops", "1"),
                                  ("globex", "zeta-secret", "1")):  # fmt: skip
        budget = {"scope": {"team": team}, "period": "month", "limit": limit, "mode": "soft"}
        await deployment.operator("PUT", f"/customers/{customer}/budgets", budget)
    await _spend(deployment, "acme", "eng", 4)  # 0.003 of 0.002: every threshold fires
    await _spend(deployment, "acme", "ops", 2)
    await _spend(deployment, "globex", "zeta-secret", 3)
    await _ingested(deployment, 9)
    viewer = await deployment.token("acme", "viewer", label="finance")
    login = f"http://127.0.0.1:{deployment.ledger.port}/console/login?token={viewer}"

    dom = (await _browse(login, tmp_path / "p1", "--dump-dom")).decode()
    assert '<span id="customer">acme</span>' in dom
    for shown in ("eng", "ops", "team:eng", "team:ops", "0.003000000", "budget.set", "100%"):
        assert shown in dom, shown
    for hidden in ("globex", "zeta-secret"):
        assert hidden not in dom, hidden
    assert "<svg" in dom  # the chart

    screenshot = tmp_path / "console.png"
    await _browse(login, tmp_path / "p2", f"--screenshot={screenshot}")
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert screenshot.stat().st_size > 20_000  # a rendered page, not a blank one

    team_viewer = await deployment.token("acme", "viewer", "eng")
    login = f"http://127.0.0.1:{deployment.ledger.port}/console/login?token={team_viewer}"
    dom = (await _browse(login, tmp_path / "p3", "--dump-dom")).decode()
    assert "team:eng" in dom
    assert "team:ops" not in dom
    assert "The invoice is the whole customer" in dom
