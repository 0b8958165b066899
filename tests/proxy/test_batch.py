"""What arrived in one read of a stream: forwarded byte for byte, with its output bound, its
usage and its end, the same whether the chunks are decoded together (the fast path, for the
one-``data``-line events providers send) or one by one (anything else, and to cut short).
The reference below reads events with the standard library's json, one at a time."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from sidecar.proxy.stream import Batch

TEXT = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)


def _chunk(content: str | None, tool: str | None) -> dict[str, Any]:
    delta: dict[str, Any] = {} if content is None else {"content": content}
    if tool is not None:
        delta["tool_calls"] = [{"index": 0, "function": {"name": "f", "arguments": tool}}]
    choice = {"index": 0, "delta": delta, "finish_reason": None}
    return {"id": "c", "object": "chat.completion.chunk", "model": "m", "choices": [choice]}


USAGE = {"id": "c", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 7}}
CHUNKS = st.lists(st.builds(_chunk, st.none() | TEXT, st.none() | TEXT), max_size=8)


def _event(chunk: dict[str, Any], odd: bool) -> bytes:
    data = json.dumps(chunk, ensure_ascii=odd).encode()
    return (b"event: message\ndata: " if odd else b"data: ") + data


def _bytes(text: Any) -> int:
    return len(text.encode()) if isinstance(text, str) else 0


def _reference(events: list[bytes], wants_usage: bool) -> tuple[bytes, int, Any, bool]:
    out, tokens, usage = b"", 0, None
    for raw in events:
        data = raw.split(b"\n")[-1].removeprefix(b"data: ")
        if data == b"[DONE]":
            return out, tokens, usage, True
        chunk = json.loads(data)
        usage = chunk.get("usage") or usage
        if chunk.get("usage") and not chunk["choices"] and not wants_usage:
            continue
        for choice in chunk["choices"]:
            delta = choice["delta"]
            tokens += _bytes(delta.get("content"))
            for call in delta.get("tool_calls", ()):
                tokens += _bytes(call["function"]["name"]) + _bytes(call["function"]["arguments"])
        out += raw + b"\n\n"
    return out, tokens, usage, False


@given(
    chunks=CHUNKS,
    usage=st.booleans(),
    done=st.booleans(),
    wants_usage=st.booleans(),
    odd=st.booleans(),
)
def test_a_batch_forwards_bounds_and_ends_as_reading_it_event_by_event_does(
    chunks: list[dict[str, Any]], usage: bool, done: bool, wants_usage: bool, odd: bool
) -> None:
    events = [_event(chunk, odd) for chunk in chunks + ([USAGE] if usage else [])]
    events += [b"data: [DONE]"] if done else []
    if not events:
        return
    batch = Batch(b"\n\n".join(events), wants_usage)
    out, tokens, seen, ended = _reference(events, wants_usage)
    assert (batch.out, batch.tokens, batch.usage, batch.done) == (out, tokens, seen, ended)


@given(
    chunks=CHUNKS.filter(bool),
    room=st.integers(0, 60),
    usage=st.booleans(),
    wants_usage=st.booleans(),
    odd=st.booleans(),
)
def test_split_forwards_the_longest_run_of_events_that_fits_and_keeps_the_rest(
    chunks: list[dict[str, Any]], room: int, usage: bool, wants_usage: bool, odd: bool
) -> None:
    events = [_event(chunk, odd) for chunk in chunks + ([USAGE] if usage else [])]
    batch = Batch(b"\n\n".join(events), wants_usage)
    out, tokens, rest = batch.split(room)
    assert tokens <= room
    fits = 0
    while fits < len(events) and _reference(events[: fits + 1], wants_usage)[1] <= room:
        fits += 1
    assert (out, tokens) == _reference(events[:fits], wants_usage)[:2]
    assert (rest is None) == (fits == len(events))
    if rest is not None:  # nothing lost, nothing twice, nothing decoded differently
        assert (out + rest.out, tokens + rest.tokens) == (batch.out, batch.tokens)
        assert rest.first_data() == events[fits].split(b"\n")[-1].removeprefix(b"data: ")
        assert rest.split(math.inf) == (rest.out, rest.tokens, None)
