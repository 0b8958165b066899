"""Invariant 6 over HTTP: what the cached catalog already decides costs no Redis command.

The proof reads the server's own ``INFO commandstats`` before and after a batch of requests:
every command but INFO itself (which this test sends) must show the same call count.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sidecar.store.redis_store import RedisStore
from tests.http.conftest import CATALOG, Api

pytestmark = pytest.mark.redis

ROUNDS = 25


async def _calls(store: RedisStore) -> dict[str, int]:
    stats = await store.client.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): int(row["calls"])
        for name, row in stats.items()
        if name != "cmdstat_info"
    }


def _delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    names = before.keys() | after.keys()
    moved = {name: after.get(name, 0) - before.get(name, 0) for name in names}
    return {name: count for name, count in moved.items() if count}


LOCAL: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("/v1/check", {"customer": "acme", "feature": "sso"},
     {"allowed": False, "reason": "feature_not_entitled"}),
    ("/v1/check", {"customer": "acme", "feature": "chat", "model": "claude-sonnet-4"},
     {"allowed": False, "reason": "model_not_allowed"}),
    ("/v1/check", {"customer": "acme", "feature": "teleport"},
     {"allowed": False, "reason": "unknown_feature"}),
    ("/v1/check", {"customer": "acme", "feature": "max_context_tokens", "team": "eng"},
     {"allowed": True, "reason": "ok",
      "value": CATALOG["plans"]["pro"]["features"]["max_context_tokens"]["value"]}),
    ("/v1/reserve", {"customer": "acme", "feature": "sso", "idempotency_key": "k"},
     {"allowed": False, "reason": "feature_not_entitled"}),
    ("/v1/reserve", {"customer": "acme", "feature": "chat", "model": "claude-sonnet-4",
                     "units": {"input_tokens": 10}, "idempotency_key": "k"},
     {"allowed": False, "reason": "model_not_allowed"}),
    ("/v1/reserve", {"customer": "acme", "feature": "teleport", "idempotency_key": "k"},
     {"allowed": False, "reason": "unknown_feature"}),
]  # fmt: skip


async def test_local_decisions_make_no_redis_call(api: Api, store: RedisStore) -> None:
    await api.seed(grants={"paid": "10"})
    await asyncio.sleep(0.2)  # let the seed's own change notices arrive before warming
    warm = await api.ok("/v1/check", {"customer": "acme", "feature": "sso"})
    assert warm["reason"] == "feature_not_entitled"
    assert len(api.sidecar.customers) == 1
    # One real reserve, so that the server knows the script when the control runs it below.
    body = {"customer": "acme", "feature": "chat", "amount": "1", "idempotency_key": "warm"}
    assert (await api.ok("/v1/reserve", body))["allowed"] is True
    await _calls(store)  # the first INFO may open this client's connection

    before = await _calls(store)
    for i in range(ROUNDS):
        for path, body, expected in LOCAL:
            request = {**body, "idempotency_key": f"k-{i}"} if "idempotency_key" in body else body
            answer = await api.ok(path, request)
            assert {key: answer[key] for key in expected} == expected, answer
        # Bad input is refused locally too.
        bad = {"customer": "acme", "feature": "chat", "idempotency_key": f"k-{i}", "ttl_ms": 0}
        assert (await api.post("/v1/reserve", bad)).status == 400
    after = await _calls(store)
    assert _delta(before, after) == {}, "locally decided requests reached Redis"

    # Control: decisions that need Redis do show up in the same measurement.
    metered = await api.ok("/v1/check", {"customer": "acme", "feature": "chat"})
    assert metered["remaining"] == CATALOG["plans"]["pro"]["features"]["chat"]["limit"]
    checked = await _calls(store)
    assert _delta(after, checked) == {"hmget": 1}
    reserved = await api.ok(
        "/v1/reserve",
        {"customer": "acme", "feature": "chat", "amount": "1", "idempotency_key": "control"},
    )
    assert reserved["allowed"] is True
    # One script call; the commands it runs inside the script are counted as well.
    assert _delta(checked, await _calls(store))["evalsha"] == 1
