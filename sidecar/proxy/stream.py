"""Relaying a streamed chat completion (server-sent events), chunk by chunk as it arrives.

A stream may hold less than its worst case (the feature's ``stream_hold_tokens``). Of each
batch of chunks, what the hold covers is forwarded at once; for the rest, the hold grows
first (``Hold.cover``; each step ``Decisions.grow``: one atomic check of every cap,
idempotent per step), so the first chunk never waits for a growth. When a step is refused,
nothing more is forwarded: the client gets a last chunk with ``finish_reason: "length"`` and
``"creditgate": {"cut_off": <reason>, "scope": ...}``, then ``[DONE]``; the upstream request
is closed, and what was delivered is committed, flagged estimated. Whatever was delivered
stays within the hold, so no cap is ever passed. Once the worst case is held, everything the
upstream writes is forwarded: it writes no more tokens than that, though the UTF-8 bound of
what it wrote may count more.

The upstream is always asked for usage (``stream_options.include_usage``); its usage chunk is
stripped when the client did not ask for it. What was delivered is counted as it goes (UTF-8
bytes of the content: never fewer than its tokens, proxy/bounds.py), so that a stream that
breaks, or whose client leaves, before usage arrives is committed for at most that, flagged
estimated, and the upstream request is closed.
"""

from __future__ import annotations

import contextlib
import logging
import math
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
DONE_EVENT = b"data: " + DONE + b"\n\n"


class Hold:
    """The worst case of a stream, the output tokens it holds now, and its growth step."""

    def __init__(self, worst: dict[str, int], output: int, step: int) -> None:
        self.worst = worst
        self.output = output
        self.step = step
        self.steps = 0

    def room(self, delivered: int) -> float:
        """How many more output tokens may be forwarded. Once the worst case is held, all:
        the upstream writes at most that many tokens, whatever the UTF-8 bound counts."""
        if self.output >= self.worst["output_tokens"]:
            return math.inf
        return self.output - delivered

    async def cover(self, settlement: Settlement, output: int) -> GrowReply | None:
        """Grow until ``output`` tokens are held (never past the worst case); the refusal,
        or None. A step holds what is needed and at least as much again as is held (and the
        feature's step), so a long stream grows a few times, each one round trip; a refused
        step is retried with just what ``output`` needs, so that a call that fits is never
        cut off."""
        worst = self.worst["output_tokens"]
        while output > self.output and self.output < worst:
            need = min(output, worst) - self.output
            more = min(max(self.step, self.output, need), worst - self.output)
            reply = await self._grow(settlement, more)
            if reply is not None and more > need:
                reply = await self._grow(settlement, need)
            if reply is not None:
                return reply
        return None

    async def _grow(self, settlement: Settlement, more: int) -> GrowReply | None:
        self.steps += 1
        reply = await settlement.service.grow(
            settlement.reservation_id, self.steps, {"output_tokens": more}
        )
        if reply.result != "grown":
            return reply
        self.output += more
        return None


def _cut_off(data: bytes, refusal: GrowReply) -> bytes:
    """The last chunk, after ``data`` (the chunk that did not fit), and ``[DONE]``."""
    chunk = _decode(data)
    reason = refusal.reason or "store_unavailable"
    last = {
        **{k: chunk[k] for k in ("id", "object", "created", "model") if k in chunk},
        "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}],
        "creditgate": {"cut_off": reason, "scope": refusal.scope},
    }
    return b"data: " + _encode(last) + b"\n\n" + DONE_EVENT


class _Function(msgspec.Struct):
    name: str | None = None
    arguments: str | None = None


class _ToolCall(msgspec.Struct):
    function: _Function | None = None


class _Delta(msgspec.Struct):
    content: str | None = None
    refusal: str | None = None
    reasoning_content: str | None = None
    tool_calls: list[_ToolCall] | None = None


class _Choice(msgspec.Struct):
    delta: _Delta | None = None


class Chunk(msgspec.Struct):
    """What the relay reads of a chunk (the rest is forwarded as it came)."""

    choices: list[_Choice] | None = None
    usage: dict[str, Any] | None = None


_chunk = msgspec.json.Decoder(Chunk).decode


def _utf8(text: str | None) -> int:
    return 0 if text is None else len(text.encode())


def delivered_tokens(chunk: Chunk) -> int:
    """An upper bound of the output tokens one chunk delivers: the UTF-8 bytes of its text."""
    total = 0
    for choice in chunk.choices or ():
        delta = choice.delta
        if delta is None:
            continue
        total += _utf8(delta.content) + _utf8(delta.refusal) + _utf8(delta.reasoning_content)
        for call in delta.tool_calls or ():
            if call.function is not None:
                total += _utf8(call.function.name) + _utf8(call.function.arguments)
    return total


def _data(raw: bytes) -> bytes | None:
    """The ``data`` payload of one event (its last data line), or None."""
    if raw.startswith(b"data: ") and b"\n" not in raw:  # the shape every provider sends
        return raw[6:].strip()
    data = None
    for line in raw.split(b"\n"):
        if line.startswith(b"data:"):
            data = line[5:].strip()
    return data


class Event(msgspec.Struct):
    raw: bytes
    """As it came, with its blank line."""
    data: bytes | None
    tokens: int


_chunks = msgspec.json.Decoder(list[Chunk]).decode
_SEPARATOR = b"\n\ndata: "


class Batch:
    """The complete events of one read: what to forward, the output they deliver, the usage
    if it came, and whether the stream ended (``[DONE]``, sent only once the call is paid).

    ``block`` is the events without their last blank line. When every event is one ``data``
    line of a chunk, which is what providers send, the chunks are decoded in one call and
    forwarded as they came; otherwise event by event. ``split`` cuts a batch short where a
    hold ends, with what each event delivers as counted here: nothing is decoded twice."""

    def __init__(self, block: bytes, wants_usage: bool) -> None:
        self.block = block
        self.wants_usage = wants_usage
        self.done = block.endswith(b"data: " + DONE)
        if self.done:
            block = block[: -len(b"data: " + DONE)].rstrip(b"\n")
        self.usage: dict[str, Any] | None = None
        chunks = self._at_once(block)
        self.events: list[Event] | None = None
        """Event by event (the slow path); None: ``block`` and ``counts``, one per event."""
        self.counts: list[int] = []
        if chunks is None:
            self.events = self._one_by_one(block)
            self.out = b"".join(event.raw for event in self.events)
            self.tokens = sum(event.tokens for event in self.events)
            return
        self.out = block + b"\n\n" if block else b""
        for chunk in chunks:
            if chunk.usage is not None:
                self.usage = chunk.usage
        if chunks and self._stripped(chunks[-1]):  # where providers put it: last
            last = block.rfind(_SEPARATOR)
            self.out = b"" if last < 0 else block[:last] + b"\n\n"
        self.counts = [delivered_tokens(chunk) for chunk in chunks]
        self.tokens = sum(self.counts)

    def _stripped(self, chunk: Chunk) -> bool:
        """The usage chunk, when the client did not ask for it."""
        return chunk.usage is not None and not chunk.choices and not self.wants_usage

    def _at_once(self, block: bytes) -> list[Chunk] | None:
        if not block:
            return []
        separators = block.count(_SEPARATOR)
        if not block.startswith(b"data: ") or block.count(b"\n") != 2 * separators:
            return None
        if DONE in block:
            return None  # an event to stop at
        chunks = _chunks(b"[" + block[6:].replace(_SEPARATOR, b",") + b"]")
        if any(self._stripped(chunk) for chunk in chunks[:-1]):
            return None
        return chunks

    def _one_by_one(self, block: bytes) -> list[Event]:
        events = []
        for raw in block.split(b"\n\n"):
            if not raw.strip():
                continue
            data = _data(raw)
            if data == DONE:
                self.done = True
                break
            tokens = 0
            if data is not None:
                chunk = _chunk(data)
                if chunk.usage is not None:
                    self.usage = chunk.usage
                if self._stripped(chunk):
                    continue
                tokens = delivered_tokens(chunk)
            events.append(Event(raw + b"\n\n", data, tokens))
        return events

    def split(self, room: float) -> tuple[bytes, int, Batch | None]:
        """What to forward so that no more than ``room`` tokens are delivered, the tokens it
        delivers, and the rest of the batch (None when all of it goes)."""
        if self.tokens <= room:
            return self.out, self.tokens, None
        if self.events is not None:
            total = 0
            for index, event in enumerate(self.events):
                if total + event.tokens > room:
                    head = b"".join(e.raw for e in self.events[:index])
                    rest = self.events[index:]
                    out = b"".join(e.raw for e in rest)
                    return head, total, self._rest(b"", out, [], rest)
                total += event.tokens
            raise AssertionError("tokens above room, yet every event fits")
        total, fits = 0, 0
        for count in self.counts:
            if total + count > room:
                break
            total, fits = total + count, fits + 1
        start = 0  # where the first event left out begins in the block
        for _ in range(fits):
            start = self.block.index(_SEPARATOR, start) + 2
        tail = self._rest(self.block[start:], self.out[start:], self.counts[fits:], None)
        return self.out[:start], total, tail

    def _rest(
        self, block: bytes, out: bytes, counts: list[int], events: list[Event] | None
    ) -> Batch:
        """What is left once the head was forwarded, from what this batch counted: nothing
        is decoded again."""
        rest = object.__new__(Batch)
        rest.block, rest.out, rest.counts, rest.events = block, out, counts, events
        rest.wants_usage, rest.done, rest.usage = self.wants_usage, self.done, self.usage
        rest.tokens = sum(counts) if events is None else sum(e.tokens for e in events)
        return rest

    def first_data(self) -> bytes | None:
        """The ``data`` of the first event (the one a cut-off names)."""
        if self.events is not None:
            return self.events[0].data if self.events else None
        return _data(self.block.partition(b"\n\n")[0])


async def batches(content: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    """The server-sent events as they arrive: each read's complete ones, together and
    without their last blank line, so that what arrived together is forwarded in one write."""
    pending = b""
    async for block in content.iter_any():
        pending += block
        if b"\r" in pending:  # CRLF line ends (the format allows them); a lone CR waits
            pending = pending.replace(b"\r\n", b"\n")
        end = pending.rfind(b"\n\n")
        if end >= 0:
            complete, pending = pending[:end], pending[end + 2 :]
            if complete.strip():
                yield complete.strip(b"\n")
    if pending.strip():
        yield pending.strip(b"\n")


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
            async for block in batches(upstream.content):
                batch = Batch(block, wants_usage)
                usage = batch.usage or usage
                part: Batch | None = batch
                while part is not None:
                    # What the hold covers goes at once; the hold grows for the rest after.
                    out, tokens, part = part.split(hold.room(delivered))
                    if out:
                        await response.write(out)
                    delivered += tokens
                    if part is None:
                        break
                    refusal = await hold.cover(settlement, delivered + part.tokens)
                    if refusal is not None and part.tokens > hold.room(delivered):
                        out, tokens, left = part.split(hold.room(delivered))
                        if out:
                            await response.write(out)
                        delivered += tokens
                        assert left is not None  # more than the room: something is left
                        tail = _cut_off(left.first_data() or b"{}", refusal)
                        break
                if tail:
                    break
                if batch.done:
                    tail = DONE_EVENT
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
