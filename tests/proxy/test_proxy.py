"""The proxy with the official ``openai`` SDK as the client: non-streaming, streaming and
embeddings calls are enforced and metered with no integration code; what is committed is the
upstream's own usage, to the nano-credit; the consumption event names the key's subject."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import openai
import pytest
import yaml

from sidecar.proxy.demo import PER_MESSAGE, DemoUpstream, prompt_tokens
from tests.conftest import StartSidecar
from tests.proxy.conftest import MODELS, Proxied, cost

pytestmark = pytest.mark.redis

MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Say a few words about billing, please."},
]
PROMPT = prompt_tokens(MESSAGES)  # what the demo upstream reports, computed its way


def _spent(balance: dict[str, object]) -> Decimal:
    """Credits gone from the paid grant of 5 and the pro plan's 20 included, holds apart."""
    return Decimal(25) - Decimal(str(balance["balance"])) - Decimal(str(balance["held"]))


async def test_a_chat_completion_is_charged_the_upstreams_usage_and_attributed_to_the_key(
    proxied: Proxied,
) -> None:
    await proxied.seed()
    key = await proxied.key(team="eng", agent="writer")
    async with proxied.client(key) as client:
        answer = await client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, max_completion_tokens=30
        )
    assert answer.choices[0].finish_reason == "length"
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (PROMPT, 30)
    usage = {"input_tokens": PROMPT, "output_tokens": 30}
    balance = await proxied.balance()
    assert Decimal(balance["held"]) == 0
    assert _spent(balance) == cost("gpt-4o-mini", usage)
    (debit,) = await proxied.debits()
    assert (debit["customer"], debit["team"], debit["agent"], debit["model"]) == (
        "acme", "eng", "writer", "gpt-4o-mini",
    )  # fmt: skip
    assert debit["feature"] == "chat"
    assert "estimated" not in debit
    assert proxied.upstream.requests[0]["messages"] == MESSAGES  # forwarded unchanged


@pytest.mark.parametrize("include_usage", [False, True])
async def test_a_stream_is_relayed_and_charged_its_usage_chunk(
    proxied: Proxied, include_usage: bool
) -> None:
    await proxied.seed()
    key = await proxied.key(user="ann")
    options = {"stream_options": {"include_usage": True}} if include_usage else {}
    async with proxied.client(key) as client:
        stream = await client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, stream=True, **options
        )
        chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "word " * 40
    usage_chunks = [c for c in chunks if c.usage is not None]
    assert len(usage_chunks) == (1 if include_usage else 0)  # stripped unless asked for
    assert proxied.upstream.requests[0]["stream_options"] == {"include_usage": True}
    balance = await proxied.balance()
    assert Decimal(balance["held"]) == 0
    assert _spent(balance) == cost("gpt-4o", {"input_tokens": PROMPT, "output_tokens": 40})
    (debit,) = await proxied.debits()
    assert (debit["user"], debit["model"]) == ("ann", "gpt-4o")


async def test_a_stream_capped_by_max_tokens_is_delivered_whole(proxied: Proxied) -> None:
    """Its text has more UTF-8 bytes (the delivered bound) than max_tokens, the worst case
    held: once the worst case is held, everything the upstream writes goes through."""
    await proxied.seed()
    async with proxied.client(await proxied.key()) as client:
        stream = await client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True, max_tokens=20
        )
        chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "word " * 20
    assert chunks[-1].choices[0].finish_reason == "length"  # the upstream's, not a cut-off
    balance = await proxied.balance()
    assert _spent(balance) == cost("gpt-4o-mini", {"input_tokens": PROMPT, "output_tokens": 20})
    assert Decimal(balance["held"]) == 0


async def test_a_providers_cookie_never_rides_on_another_customers_call(
    proxied: Proxied,
    start_sidecar: StartSidecar,
    upstream: tuple[DemoUpstream, int],
    tmp_path: Path,
) -> None:
    """By name, not IP: a cookie jar keeps a host's cookies, not an address's."""
    port = upstream[1]
    spec = {"upstreams": {"demo": {
        "base_url": f"http://localhost:{port}/v1", "api_key_env": "CG_TEST_UPSTREAM_KEY",
        "models": MODELS,
    }}}  # fmt: skip
    (tmp_path / "by-name.yaml").write_text(yaml.safe_dump(spec))
    sidecar = await start_sidecar(proxy_upstreams=str(tmp_path / "by-name.yaml"), proxy_port=0)
    await proxied.seed("acme")
    await proxied.seed("globex")
    proxied.upstream.cookie = "__cf_bm=set-for-acme; Path=/"
    for customer in ("acme", "globex"):
        async with openai.AsyncOpenAI(
            base_url=f"http://127.0.0.1:{sidecar.proxy_port}/v1",
            api_key=await proxied.key(customer), max_retries=0,
        ) as client:  # fmt: skip
            await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert len(proxied.upstream.requests) == 2
    assert proxied.upstream.cookies_seen == []


async def test_embeddings_are_charged_their_prompt_tokens(proxied: Proxied) -> None:
    await proxied.seed()
    async with proxied.client(await proxied.key()) as client:
        answer = await client.embeddings.create(
            model="gpt-4o-mini", input=["one two three", "four five"]
        )
    assert len(answer.data) == 2
    assert answer.usage.prompt_tokens == 5
    balance = await proxied.balance()
    assert _spent(balance) == cost("gpt-4o-mini", {"input_tokens": 5})
    assert Decimal(balance["held"]) == 0


async def test_denials_are_the_sdks_own_exceptions_with_creditgates_reason(
    proxied: Proxied,
) -> None:
    await proxied.seed(plan="free")
    await proxied.admin("PUT", "/acme/budgets", {"limit": "0.00001", "period": "month"})
    key = await proxied.key()
    async with proxied.client(key) as client:
        with pytest.raises(openai.PermissionDeniedError) as refused:
            await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert refused.value.response.headers["X-Creditgate-Reason"] == "model_not_allowed"
        assert refused.value.code == "model_not_allowed"
        with pytest.raises(openai.RateLimitError) as limited:
            await client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, max_tokens=1000
            )
        headers = limited.value.response.headers
        assert (headers["X-Creditgate-Reason"], headers["X-Creditgate-Scope"]) == (
            "budget_exceeded", "customer/month",
        )  # fmt: skip
    assert proxied.upstream.requests == []  # refused before any upstream traffic
    assert Decimal((await proxied.balance())["held"]) == 0


def test_the_demo_counts_prompt_tokens_per_word_and_message() -> None:
    assert PROMPT == 3 + 7 + 2 * PER_MESSAGE
