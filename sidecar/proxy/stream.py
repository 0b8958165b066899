"""Relaying a streamed chat completion (server-sent events), chunk by chunk as it arrives.

A stream may hold less than its worst case (the feature's ``stream_hold_tokens``): before a
chunk is forwarded that would take what was delivered past the output held, the hold grows
by a step (``Decisions.grow``: one atomic check of every cap, idempotent per step). When a
step is refused, nothing more is forwarded: the client gets a last chunk with
``finish_reason: "length"`` and ``"creditgate": {"cut_off": <reason>, "scope": ...}``, then
``[DONE]``; the upstream request is closed, and what was delivered is committed, flagged
estimated. Whatever was delivered stays within the hold, so no cap is ever passed.

The upstream is always asked for usage (``stream_options.include_usage``); its usage chunk is
stripped when the client did not ask for it. What was delivered is counted as it goes (UTF-8
bytes of the content: never fewer than its tokens, proxy/bounds.py), so that a stream that
breaks, or whose client leaves, before usage arrives is committed for at most that, flagged
estimated, and the upstream request is closed.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import aiohttp
import msgspec
from aiohttp import web

from sidecar.proxy.errors import upstream_failed
from sidecar.proxy.settle import Settlement
from sidecar.store.records import GrowReply

if TYPE_CHECKING:
    from sidecar.proxy.app import Call

__all__ = ["Hold", "delivered_tokens", "relay"]

log = logging.getLogger(__name__)
_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode
DONE = b"[DONE]"


class Hold:
    """The worst case of a stream, the output tokens it holds now, and its growth step."""

    def __init__(self, worst: dict[str, int], output: int, step: int) -> None:
        self.worst = worst
        self.output = output
        self.step = step
        self.steps = 0

    async def cover(self, settlement: Settlement, output: int) -> GrowReply | None:
        """Grow until ``output`` tokens are held (never past the worst case); the refusal,
        or None."""
        while output > self.output and self.output < self.worst["output_tokens"]:
            more = min(self.step, self.worst["output_tokens"] - self.output)
            self.steps += 1
            reply = await settlement.service.grow(
                settlement.reservation_id, self.steps, {"output_tokens": more}
            )
            if reply.result != "grown":
                return reply
            self.output += more
        return None


def _cut_off(chunk: dict[str, Any], refusal: GrowReply) -> bytes:
    reason = refusal.reason or "store_unavailable"
    last = {
        **{k: chunk[k] for k in ("id", "object", "created", "model") if k in chunk},
        "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}],
        "creditgate": {"cut_off": reason, "scope": refusal.scope},
    }
    return b"data: " + _encode(last) + b"\n\ndata: [DONE]\n\n"


Event = tuple[bytes, bytes | None]


def _event(raw: bytes) -> Event:
    data = None
    for line in raw.split(b"\n"):
        if line.startswith(b"data:"):
            data = line[5:].strip()
    return raw + b"\n\n", data


async def batches(content: aiohttp.StreamReader) -> AsyncIterator[list[Event]]:
    """The server-sent events as they arrive: each read's complete events, as (raw bytes,
    ``data`` payload or None), so that what arrived together is forwarded in one write."""
    pending = b""
    async for block in content.iter_any():
        pending += block.replace(b"\r\n", b"\n")
        *complete, pending = pending.split(b"\n\n")
        if complete:
            yield [_event(raw) for raw in complete if raw.strip()]
    if pending.strip():
        yield [_event(pending)]


def delivered_tokens(chunk: dict[str, Any]) -> int:
    """An upper bound of the output tokens one chunk delivers: the UTF-8 bytes of its text."""
    total = 0
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") or {}
        for field in ("content", "refusal", "reasoning_content"):
            if isinstance(delta.get(field), str):
                total += len(delta[field].encode())
        for call in delta.get("tool_calls") or ():
            function = call.get("function") or {}
            for field in ("name", "arguments"):
                if isinstance(function.get(field), str):
                    total += len(function[field].encode())
    return total


async def relay(
    request: web.Request,
    call: Call,
    settlement: Settlement,
    hold: Hold,
    client: aiohttp.ClientSession,
) -> web.StreamResponse:
    options = call.body.get("stream_options") or {}
    wants_usage = isinstance(options, dict) and options.get("include_usage") is True
    body = {**call.body, "stream_options": {**(options or {}), "include_usage": True}}
    try:
        upstream = await client.post(
            call.upstream.base_url + "/chat/completions", data=_encode(body), headers=call.headers()
        )
    except (aiohttp.ClientError, TimeoutError) as error:
        await settlement.release()
        log.warning("upstream %s failed: %r", call.upstream.name, error)
        return upstream_failed(call.upstream.name, error)
    async with upstream:
        if upstream.status != 200:
            raw = await upstream.read()
            await settlement.release()
            return web.Response(
                body=raw, status=upstream.status, content_type=upstream.content_type
            )
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                     **settlement.headers()}
        )  # fmt: skip
        await response.prepare(request)
        usage, delivered, tail = None, 0, b""
        try:
            async for batch in batches(upstream.content):
                out = bytearray()
                for raw, data in batch:
                    if data == DONE:  # sent once the call is settled: its end means it is paid
                        tail = raw
                        break
                    if data is not None:
                        chunk = _decode(data)
                        if chunk.get("usage") is not None:
                            usage = chunk["usage"]
                            if not chunk.get("choices") and not wants_usage:
                                continue  # the client did not ask for the usage chunk
                        more = delivered_tokens(chunk)
                        refusal = await hold.cover(settlement, delivered + more)
                        if refusal is not None:
                            tail = _cut_off(chunk, refusal)
                            break
                        delivered += more
                    out += raw
                if out:
                    await response.write(out)
                if tail:
                    break
        except (aiohttp.ClientError, TimeoutError, msgspec.DecodeError) as error:
            log.warning("upstream stream %s broke: %r", call.upstream.name, error)
        except ConnectionResetError:
            log.info("client left stream %s", settlement.reservation_id)
        finally:
            if usage is None:
                upstream.close()  # cancel the upstream: nobody reads the rest
            estimate = {**hold.worst, "output_tokens": min(delivered, hold.output)}
            await settlement.commit_usage(usage, estimate)
        with contextlib.suppress(ConnectionResetError):
            await response.write(tail)
            await response.write_eof()
        return response
