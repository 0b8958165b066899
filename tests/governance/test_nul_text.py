"""NUL in free text: PostgreSQL cannot store it, so every API refuses it naming the field
(text.py), and an entry that holds one anyway (from an older sidecar) is stored with U+FFFD
in its place instead of stopping the ledger's ingest at that entry."""

from __future__ import annotations

import msgspec
import pytest

from sidecar.wire import CommitRequest, ReserveRequest
from tests.governance.conftest import LEDGER_TOKEN, Deployment, until

pytestmark = [pytest.mark.redis, pytest.mark.postgres]

WINDOW = "from=2020-01-01T00:00:00Z&to=2040-01-01T00:00:00Z"


async def test_an_entry_with_nul_is_stored_and_ingest_goes_on(deployment: Deployment) -> None:
    service = deployment.sidecars[0].service
    for key, tags in (("nul-1", {"k": "a\x00b"}), ("nul-2", {"k": "fine"})):
        # Built in Python, not decoded: what a sidecar that did not check NUL would send.
        held = await service.reserve(ReserveRequest(
            customer="acme", feature="chat", model="gpt-4o-mini", idempotency_key=key,
            units={"input_tokens": 10}, tags=tags,
        ))  # fmt: skip
        assert held.reservation_id is not None
        await service.commit(CommitRequest(held.reservation_id, units={"input_tokens": 10}))
    url = deployment.ledger_url(f"/export?{WINDOW}&customer=acme")

    async def both() -> str | None:
        _, text = await deployment.call("GET", url, LEDGER_TOKEN)
        return text if text.count("\n") >= 2 else None

    exported = await until(both, "both calls in the ledger")
    rows = [msgspec.json.decode(line) for line in exported.splitlines()]
    assert [msgspec.json.decode(row["tags"]) for row in rows] == [{"k": "a\ufffdb"}, {"k": "fine"}]


async def test_the_ledger_refuses_nul_naming_the_field_and_moves_nothing(
    deployment: Deployment,
) -> None:
    before = await deployment.sidecars[0].service.balance("acme")
    cases = [
        ("POST", "/customers/acme/adjustments",
         {"idempotency_key": "a1", "amount": "1", "credit_type": "paid", "reason": "r\x00"},
         "reason"),
        ("POST", "/customers/acme/webhooks", {"url": "http://127.0.0.1:9/\x00"}, "url"),
        ("POST", "/pricing/tokens", {"idempotency_key": "t1", "name": "a\x00", "role": "agent"},
         "name"),
        ("GET", "/pricing/proposals/cp_%00", None, "id"),
        ("DELETE", "/webhooks/wh_%00", None, "id"),
    ]  # fmt: skip
    for method, path, body, field in cases:
        status, answer = await deployment.call(
            method, deployment.ledger_url(path), LEDGER_TOKEN, body
        )
        assert (status, answer["error"]["field"]) == (400, field), (path, answer)
        assert "NUL" in answer["error"]["message"]
    assert await deployment.sidecars[0].service.balance("acme") == before
    _, hooks = await deployment.call("GET", deployment.ledger_url("/webhooks"), LEDGER_TOKEN)
    assert hooks["endpoints"] == []
