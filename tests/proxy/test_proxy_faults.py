"""Whatever ends a proxied call, its hold is settled and nothing stays held: a client that
leaves mid-stream, an upstream that dies mid-stream or never reports usage (committed for what
was delivered, flagged estimated), an upstream error (released, passed through unchanged);
and bad input is refused in the SDK's terms before any upstream traffic."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest

from tests.proxy.conftest import Proxied

pytestmark = pytest.mark.redis

SETTLED_WITHIN_S = 30.0
"""How long settling may take after the stream ends; only a bug takes this long."""
MESSAGES = [{"role": "user", "content": "hello there"}]
WORD_BYTES = len(b"word ")


async def _until(condition: Callable[[], Awaitable[bool]]) -> None:
    deadline = time.monotonic() + SETTLED_WITHIN_S
    while not await condition():
        assert time.monotonic() < deadline, "not settled"
        await asyncio.sleep(0.02)


async def _settled(proxied: Proxied) -> list[dict[str, str]]:
    """Wait until nothing is held and one debit is out; return the debits."""

    async def done() -> bool:
        balance = await proxied.balance()
        return Decimal(balance["held"]) == 0 and len(await proxied.debits()) == 1

    await _until(done)
    return await proxied.debits()


def _headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}


async def _post(proxied: Proxied, key: str, body: Any, path: str = "/chat/completions") -> Any:
    async with proxied.http.post(
        proxied.base_url + path, data=json.dumps(body), headers=_headers(key)
    ) as answer:
        return answer.status, await answer.json()


async def test_a_client_that_leaves_mid_stream_cancels_the_upstream_and_pays_what_it_got(
    proxied: Proxied,
) -> None:
    await proxied.seed()
    key = await proxied.key()
    proxied.upstream.chunk_delay_s = 0.02
    body = {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True}
    async with proxied.http.post(
        proxied.base_url + "/chat/completions", data=json.dumps(body), headers=_headers(key)
    ) as answer:
        assert answer.status == 200
        for _ in range(3):
            await answer.content.readline()
        answer.close()  # the client goes away
    (debit,) = await _settled(proxied)
    assert debit["estimated"] == "1"
    units = json.loads(debit["units"])
    assert 0 < units["output_tokens"] < 40 * WORD_BYTES
    await _until(lambda: _idle(proxied))  # the upstream request was closed


async def _idle(proxied: Proxied) -> bool:
    return proxied.upstream.open_streams == 0


@pytest.mark.parametrize("fault", ["dies", "no-usage"])
async def test_an_upstream_that_dies_or_sends_no_usage_is_committed_for_what_was_delivered(
    proxied: Proxied, fault: str
) -> None:
    await proxied.seed()
    key = await proxied.key()
    if fault == "dies":
        proxied.upstream.fail_after = 5
    else:
        proxied.upstream.usage = False
    body = {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True}
    async with proxied.http.post(
        proxied.base_url + "/chat/completions", data=json.dumps(body), headers=_headers(key)
    ) as answer:
        text = await answer.text()
    delivered = 5 if fault == "dies" else 40
    assert text.count('"content":"word "') == delivered
    (debit,) = await _settled(proxied)
    assert debit["estimated"] == "1"
    assert json.loads(debit["units"])["output_tokens"] == delivered * WORD_BYTES


async def test_an_upstream_error_is_passed_through_and_releases_the_hold(
    proxied: Proxied,
) -> None:
    await proxied.seed()
    proxied.upstream.api_key = "another"  # the upstream refuses the proxy's key
    status, body = await _post(proxied, await proxied.key(), {
        "model": "gpt-4o-mini", "messages": MESSAGES,
    })  # fmt: skip
    assert (status, body["error"]["message"]) == (401, "bad key")
    assert Decimal((await proxied.balance())["held"]) == 0
    assert await proxied.debits() == []


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        (b"{not json", 400, "body"),
        ({"model": "gpt-9", "messages": MESSAGES}, 404, "model"),
        ({"messages": MESSAGES}, 400, "model"),
        ({"model": "gpt-4o-mini", "messages": []}, 400, "messages"),
        ({"model": "gpt-4o-mini", "messages": MESSAGES, "max_tokens": -1}, 400, "max_tokens"),
        ({"model": "gpt-4o-mini", "messages": MESSAGES, "max_completion_tokens": 10**9}, 400,
         "max_completion_tokens"),
        ({"model": "gpt-4o-mini", "messages": MESSAGES, "n": 0}, 400, "n"),
        ({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "http://x/y.png"}}]}]}, 400,
         "messages[0].content[0].type"),
        ({"model": "gpt-4o-mini", "input": 7}, 400, "input"),
        ({"model": "gpt-4o-mini", "input": ["a", {"b": 1}]}, 400, "input[1]"),
    ],
)  # fmt: skip
async def test_bad_input_is_a_clear_4xx_with_no_upstream_traffic_and_nothing_held(
    proxied: Proxied, body: Any, status: int, param: str
) -> None:
    await proxied.seed()
    key = await proxied.key()
    path = "/embeddings" if isinstance(body, dict) and "input" in body else "/chat/completions"
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with proxied.http.post(proxied.base_url + path, data=data, headers=_headers(key)) as r:
        answer = (r.status, await r.json())
    assert answer[0] == status, answer
    error = answer[1]["error"]
    assert error["param"] == param
    assert error["message"]
    assert error["type"]
    assert proxied.upstream.requests == []
    assert Decimal((await proxied.balance())["held"]) == 0


async def test_a_missing_unknown_or_revoked_key_is_401_and_an_oversize_body_413(
    proxied: Proxied,
) -> None:
    await proxied.seed()
    key = await proxied.key()
    await proxied.admin("DELETE", f"/acme/proxy-keys/{key.partition('.')[0]}")
    body = json.dumps({"model": "gpt-4o-mini", "messages": MESSAGES}).encode()
    url = proxied.base_url + "/chat/completions"
    for headers in ({}, {"Authorization": "Bearer pk_nope.x"}, {"Authorization": f"Bearer {key}"}):
        async with proxied.http.post(url, data=body, headers=headers) as answer:
            assert answer.status == 401
            assert (await answer.json())["error"]["type"] == "authentication_error"
    fresh = await proxied.key(agent="a")
    big = (
        b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "'
        + b"x" * (5 * 2**20)
        + b'"}]}'
    )
    async with proxied.http.post(url, data=io.BytesIO(big), headers=_headers(fresh)) as answer:
        assert answer.status == 413
    async with proxied.http.post(
        url, data=body, headers={**_headers(fresh), "X-Creditgate-Agent": "other"}
    ) as answer:
        assert answer.status == 403  # a header may narrow the key, never widen it
    assert proxied.upstream.requests == []
    assert Decimal((await proxied.balance())["held"]) == 0
