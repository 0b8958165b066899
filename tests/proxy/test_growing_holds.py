"""Holds that grow with the stream: a streamed call holds ``stream_hold_tokens`` of output
at first (the example catalog's chat: 256) and grows in steps, each one atomic check of every
cap (grow.lua, idempotent per step). 200 concurrent streams on one budget that fits far fewer
worst cases: with room for their actual usage, every one completes; with less, the ones that
cannot grow are cut off with ``finish_reason: "length"`` and committed for what they got, and
the budget is never passed, to the nano-credit."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

import pytest

from sidecar.proxy.bounds import PER_MESSAGE, PER_REQUEST
from sidecar.service import Service
from sidecar.wire import CommitRequest, ReleaseRequest, ReserveRequest
from tests.proxy.conftest import Proxied, cost

pytestmark = pytest.mark.redis

MESSAGES = [{"role": "user", "content": "hello there"}]
WORDS = 120  # 600 bytes of output: the hold grows 256 -> 512 -> 768 tokens
STREAMS = 200
INPUT_BOUND = len(b"hello there") + PER_MESSAGE + PER_REQUEST
WORST = cost("gpt-4o-mini", {"input_tokens": INPUT_BOUND, "output_tokens": 16384})
SETTLED_WITHIN_S = 60.0
"""How long 200 streams may take to start; only a bug takes this long."""
PEAK = cost("gpt-4o-mini", {"input_tokens": INPUT_BOUND, "output_tokens": 768})


async def _stream(client: Any) -> dict[str, Any]:
    """One streamed call: its text, how it finished, and Creditgate's cut-off marker."""
    stream = await client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True
    )
    text, finish, marker = "", None, None
    async for chunk in stream:
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
        marker = (chunk.model_extra or {}).get("creditgate", marker)
    return {"text": text, "finish": finish, "marker": marker}


@pytest.mark.parametrize(
    ("budget", "cut_off"),
    [(Decimal("0.2"), False), (Decimal("0.05"), True)],
    ids=["room-for-actual-usage", "room-for-some"],
)
async def test_concurrent_streams_grow_their_holds_and_never_pass_the_budget(
    proxied: Proxied, budget: Decimal, cut_off: bool
) -> None:
    assert 9 * budget < STREAMS * WORST  # worst-case holds would refuse nearly every call
    assert Decimal("0.2") > STREAMS * PEAK
    await proxied.seed()
    await proxied.admin("PUT", "/acme/budgets", {"limit": str(budget), "period": "month"})
    proxied.upstream.words = WORDS
    proxied.upstream.chunk_delay_s = 0.002
    proxied.upstream.pause_after = 30  # 150 bytes: within the first hold of every stream
    key = await proxied.key()
    async with proxied.client(key, timeout=120) as client:
        calls = asyncio.gather(*(_stream(client) for _ in range(STREAMS)), return_exceptions=True)
        async with asyncio.timeout(SETTLED_WITHIN_S):  # every first hold fits either budget
            while proxied.upstream.paused < STREAMS:
                await asyncio.sleep(0.01)
        proxied.upstream.resume.set()  # all of them now need more at the same time
        results = await calls
    refused = [r for r in results if isinstance(r, BaseException)]
    done = [r for r in results if not isinstance(r, BaseException)]
    complete = [r for r in done if r["finish"] == "stop"]
    cut = [r for r in done if r["finish"] == "length"]
    assert len(complete) + len(cut) == len(done)
    assert all(r["text"] == "word " * WORDS for r in complete)
    for r in cut:
        assert r["marker"]["cut_off"] == "budget_exceeded"
        assert r["marker"]["scope"] == "customer/month"
        assert len(r["text"]) < WORDS * 5
    assert refused == []
    if not cut_off:
        assert len(complete) == STREAMS
    else:
        assert cut  # some could not grow while the others held their share

    # Every stream ends once its call is committed: nothing is held when the last one ends.
    balance, debits = await proxied.balance(), await proxied.debits()
    assert Decimal(balance["held"]) == 0
    spent = Decimal(25) - Decimal(balance["balance"])  # pro's 20 included and 5 paid
    assert spent == sum((Decimal(d["cost"]) for d in debits), Decimal(0)) / 10**9  # nanos
    assert spent <= budget  # overspend 0
    by_output = sorted(json.loads(d["units"])["output_tokens"] for d in debits)
    estimated = [d for d in debits if d.get("estimated") == "1"]
    assert len(estimated) == len(cut)  # the cut-off ones: what they were delivered
    assert by_output.count(WORDS) >= len(complete)  # the rest: the upstream's usage


async def test_a_growth_step_applies_once_and_settles_like_any_hold(
    proxied: Proxied,
) -> None:
    await proxied.seed()
    service: Service = proxied.sidecar.service
    request = ReserveRequest(
        customer="acme", feature="chat", model="gpt-4o-mini",
        units={"input_tokens": 100, "output_tokens": 256}, idempotency_key="g1",
    )  # fmt: skip
    hold = await service.reserve_growable(request)
    rid = hold.reservation_id or ""
    step = cost("gpt-4o-mini", {"output_tokens": 256})
    first = await service.grow(rid, 1, {"output_tokens": 256})
    again = await service.grow(rid, 1, {"output_tokens": 256})  # a retry of step 1
    assert (first.result, again.result, first.held, again.held) == (
        "grown", "grown", first.held, first.held,
    )  # fmt: skip
    assert Decimal((await proxied.balance())["held"]) == Decimal(hold.held) + step
    await service.release(ReleaseRequest(reservation_id=rid))
    assert Decimal((await proxied.balance())["held"]) == 0
    assert (await service.grow(rid, 2, {"output_tokens": 256})).result == "not_held"

    plain = await service.reserve(
        ReserveRequest(**{**_fields(request), "idempotency_key": "g2"})
    )  # a hold not reserved as growable does not grow
    assert (await service.grow(plain.reservation_id or "", 1, {"output_tokens": 1})).result == (
        "not_held"
    )
    await service.commit(CommitRequest(reservation_id=plain.reservation_id or "", units={}))

    await proxied.admin("PUT", "/acme/budgets", {"limit": "0.0002", "period": "month"})
    tight = await service.reserve_growable(
        ReserveRequest(**{**_fields(request), "idempotency_key": "g3"})
    )
    assert tight.allowed
    denied = await service.grow(tight.reservation_id or "", 1, {"output_tokens": 1000})
    assert (denied.result, denied.reason, denied.scope) == (
        "denied", "budget_exceeded", "customer/month",
    )  # fmt: skip
    assert Decimal((await proxied.balance())["held"]) == Decimal(tight.held)  # nothing moved


def _fields(request: ReserveRequest) -> dict[str, Any]:
    return {f: getattr(request, f) for f in request.__struct_fields__}
