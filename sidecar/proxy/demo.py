"""A model provider for demos, tests and the bench: it speaks the OpenAI chat-completions and
embeddings formats (SSE streaming with a final usage chunk included), answers at once, and
counts tokens the way its replies are built, so the usage it reports is exact.

A reply is ``words`` words of ``WORD`` (one token each); ``max_completion_tokens`` /
``max_tokens`` cut it short with ``finish_reason: "length"``. A prompt token is a
whitespace-separated word of the messages' text, plus ``PER_MESSAGE`` per message. Knobs for
faults are attributes (``fail_after``: drop the connection after that many chunks;
``usage``: False sends no usage chunk; ``pause_after``: every stream waits after that many
chunks until ``resume`` is set, counted in ``paused``). ``python -m sidecar.proxy.demo --port
N`` serves it.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import msgspec
from aiohttp import web

__all__ = ["DemoUpstream", "prompt_tokens"]

WORD = "word "
PER_MESSAGE = 3
DIMENSIONS = 8
_json = msgspec.json.Encoder()


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def prompt_tokens(messages: list[dict[str, Any]]) -> int:
    return sum(len(_text(m.get("content")).split()) + PER_MESSAGE for m in messages)


class DemoUpstream:
    """The provider's state: what it serves, what it was asked (``requests``)."""

    def __init__(self, *, words: int = 50, api_key: str | None = None) -> None:
        self.words = words
        self.api_key = api_key
        self.fail_after: int | None = None
        self.usage = True
        self.chunk_delay_s = 0.0
        self.pause_after: int | None = None
        self.resume = asyncio.Event()
        self.paused = 0
        self.requests: list[dict[str, Any]] = []
        self.cookie: str | None = None
        """A ``Set-Cookie`` every answer carries (providers set some), when given."""
        self.cookies_seen: list[str] = []
        """The ``Cookie`` headers requests came with."""
        self.open_streams = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/embeddings", self._embeddings)
        return app

    def _refused(self, request: web.Request) -> web.Response | None:
        if self.api_key is not None and request.headers.get("Authorization") != (
            f"Bearer {self.api_key}"
        ):
            body = {"error": {"message": "bad key", "type": "invalid_request_error", "code": 401}}
            return web.json_response(body, status=401)
        return None

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        if (refused := self._refused(request)) is not None:
            return refused
        body = await request.json()
        self.requests.append(body)
        if "Cookie" in request.headers:
            self.cookies_seen.append(request.headers["Cookie"])
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        words = self.words if limit is None else min(self.words, int(limit))
        finish = "length" if limit is not None and int(limit) < self.words else "stop"
        usage = {
            "prompt_tokens": prompt_tokens(body["messages"]),
            "completion_tokens": words,
        }
        usage["total_tokens"] = usage["prompt_tokens"] + words
        head = {"id": "chatcmpl-demo", "created": int(time.time()), "model": body["model"]}
        if not body.get("stream"):
            message = {"role": "assistant", "content": WORD * words}
            choice = {"index": 0, "message": message, "finish_reason": finish}
            answer = web.json_response(
                {**head, "object": "chat.completion", "choices": [choice], "usage": usage}
            )
            if self.cookie is not None:
                answer.headers["Set-Cookie"] = self.cookie
            return answer
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        self.open_streams += 1
        try:
            chunk = {**head, "object": "chat.completion.chunk"}
            for i in range(words):
                if i == self.pause_after:
                    self.paused += 1
                    await self.resume.wait()
                if self.fail_after is not None and i >= self.fail_after:
                    assert request.transport is not None
                    request.transport.close()  # the provider dies mid-stream
                    return response
                delta = {"role": "assistant", "content": WORD} if i == 0 else {"content": WORD}
                choices = [{"index": 0, "delta": delta, "finish_reason": None}]
                await response.write(
                    b"data: " + _json.encode({**chunk, "choices": choices}) + b"\n\n"
                )
                if self.chunk_delay_s:
                    await asyncio.sleep(self.chunk_delay_s)
            last = [{"index": 0, "delta": {}, "finish_reason": finish}]
            await response.write(b"data: " + _json.encode({**chunk, "choices": last}) + b"\n\n")
            options = body.get("stream_options") or {}
            if self.usage and options.get("include_usage"):
                tail = {**chunk, "choices": [], "usage": usage}
                await response.write(b"data: " + _json.encode(tail) + b"\n\n")
            await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
        finally:
            self.open_streams -= 1
        return response

    async def _embeddings(self, request: web.Request) -> web.Response:
        if (refused := self._refused(request)) is not None:
            return refused
        body = await request.json()
        self.requests.append(body)
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        tokens = sum(len(i.split()) if isinstance(i, str) else len(i) for i in inputs)
        data = [
            {"object": "embedding", "index": i, "embedding": [0.5] * DIMENSIONS}
            for i in range(len(inputs))
        ]
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return web.json_response(
            {"object": "list", "data": data, "model": body["model"], "usage": usage}
        )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m sidecar.proxy.demo", description=__doc__)
    parser.add_argument("--port", type=int, default=7076)
    parser.add_argument("--words", type=int, default=50)
    args = parser.parse_args()
    web.run_app(DemoUpstream(words=args.words).app(), host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
