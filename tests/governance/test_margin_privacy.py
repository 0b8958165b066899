"""The cost of serve and the margin are the operator's: the ledger token reads them on usage,
invoice and export; an end customer's admin token (scoped) gets the same answers without
them, in JSON and in CSV."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.governance.conftest import LEDGER_TOKEN, Deployment
from tests.governance.test_corrections import _committed

pytestmark = [pytest.mark.redis, pytest.mark.postgres]

WINDOW = "from=2026-01-01T00:00:00Z&to=2030-01-01T00:00:00Z"
PATHS = (
    f"/customers/acme/usage?{WINDOW}&group_by=model",
    f"/customers/acme/invoice?{WINDOW}",
    f"/export?{WINDOW}&customer=acme&format=jsonl",
    f"/export?{WINDOW}&customer=acme&format=csv",
)


def _mentions(answer: Any) -> bool:
    text = answer if isinstance(answer, str) else repr(answer)
    return "serve_cost" in text or "margin" in text


async def test_only_the_operator_reads_cost_of_serve_and_margin(deployment: Deployment) -> None:
    await _committed(deployment)  # gpt-4o-mini, which has costs in the example catalog
    async with asyncio.timeout(30):
        while True:
            status, usage = await deployment.call(
                "GET", deployment.ledger_url(PATHS[0]), LEDGER_TOKEN
            )
            if status == 200 and usage["events"] == 1:
                break
            await asyncio.sleep(0.05)
    (row,) = usage["rows"]
    assert row["serve_cost"] != "0.000000000"
    admin = await deployment.token("acme", "admin")
    for path in PATHS:
        status, operator = await deployment.call("GET", deployment.ledger_url(path), LEDGER_TOKEN)
        assert status == 200, operator
        assert _mentions(operator), path
        status, scoped = await deployment.call("GET", deployment.ledger_url(path), admin)
        assert status == 200, scoped
        assert not _mentions(scoped), (path, scoped)
        if isinstance(scoped, dict):
            assert scoped.get("cost", scoped.get("subtotal")) == operator.get(
                "cost", operator.get("subtotal")
            )
