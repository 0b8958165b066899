"""The proxy: an OpenAI-compatible listener that reserves, forwards, streams and settles by
itself, so that an application points its SDK's ``base_url`` at the sidecar and writes no
integration code.

Every call: the proxy key says who pays (service/keys.py); the request says its worst case
(proxy/bounds.py); one reserve holds it; the request goes to the model's upstream unchanged
(a stream also asks for usage); the upstream's own ``usage`` is committed. An upstream error
releases the hold and is passed through unchanged. A stream that breaks, or whose client
leaves, before usage arrives is cancelled upstream and committed for what was delivered,
flagged estimated. Chunks are forwarded as they arrive.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

import aiohttp
import msgspec
from aiohttp import web

from sidecar.errors import InvalidInput, RequestError
from sidecar.http.keys import MAX_BODY_BYTES
from sidecar.proxy.bounds import chat_input_bound, embeddings_input_bound, output_bound
from sidecar.proxy.errors import denial, openai_error, request_error, upstream_failed
from sidecar.proxy.settle import Settlement
from sidecar.proxy.stream import Hold, relay
from sidecar.proxy.subject import subject_of
from sidecar.proxy.upstreams import Upstream
from sidecar.service import Service
from sidecar.service.keys import KeyRecord
from sidecar.wire import ReserveRequest

__all__ = ["HOLD_TTL_MS", "Call", "proxy_app"]

log = logging.getLogger(__name__)

HOLD_TTL_MS = 600_000
"""A proxied call's hold lives 10 minutes: long streams included."""
UPSTREAM_TIMEOUT = aiohttp.ClientTimeout(total=None, connect=10, sock_read=300)
_SERVICE = web.AppKey("service", Service)
_UPSTREAMS = web.AppKey("upstreams", dict)
_CLIENT = web.AppKey("client", aiohttp.ClientSession)
_FEATURE = web.AppKey("feature", str)
_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode


def _body(raw: bytes) -> dict[str, Any]:
    try:
        body = _decode(raw)
    except msgspec.DecodeError as error:
        raise InvalidInput("body", f"is not valid JSON ({error}); send a JSON object") from None
    if not isinstance(body, dict):
        raise InvalidInput("body", "must be a JSON object")
    return body


class Call:
    """One proxied request, from its headers and body to the upstream it goes to."""

    def __init__(self, request: web.Request, key: KeyRecord, body: dict[str, Any]) -> None:
        self.request = request
        self.key = key
        self.subject = subject_of(key, request.headers, request.app[_FEATURE])
        self.body = body
        self.service = request.app[_SERVICE]
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise InvalidInput("model", "is required: the model to call")
        self.model = model
        upstream = request.app[_UPSTREAMS].get(model)
        if upstream is None or model not in self.service.catalog.prices_femtos:
            raise _UnknownModel(model)
        self.upstream: Upstream = upstream

    def stream_step(self) -> int | None:
        """The feature's ``stream_hold_tokens``: a stream's first hold and growth step."""
        feature = self.service.catalog.features.get(self.subject["feature"])
        return None if feature is None else feature.stream_hold_tokens

    def headers(self) -> dict[str, str]:
        out = {"Content-Type": "application/json"}
        if self.upstream.api_key is not None:
            out["Authorization"] = f"Bearer {self.upstream.api_key}"
        return out

    async def reserve(
        self, units: dict[str, int], *, growable: bool = False
    ) -> Settlement | web.Response:
        reserve = self.service.reserve_growable if growable else self.service.reserve
        answer = await reserve(
            ReserveRequest(
                customer=self.key.customer,
                idempotency_key=f"proxy-{secrets.token_hex(12)}",
                model=self.model,
                units=units,
                ttl_ms=HOLD_TTL_MS,
                **self.subject,
            )
        )
        if not answer.allowed or answer.reservation_id is None:
            return denial(answer)
        return Settlement(self.service, answer.reservation_id)


class _UnknownModel(Exception):
    def __init__(self, model: str) -> None:
        self.model = model


async def _call(request: web.Request) -> Call:
    """The key first (a bad one is refused before the body is read: no upstream traffic,
    nothing held), then the body."""
    service = request.app[_SERVICE]
    key = await service.keyring.check(request.headers.get("Authorization", ""), service.clock())
    return Call(request, key, _body(await request.read()))


async def _chat(request: web.Request) -> web.StreamResponse:
    call = await _call(request)
    body = call.body
    stream = body.get("stream") is True
    model_max = call.service.catalog.max_output_tokens.get(call.model)
    units = {
        "input_tokens": chat_input_bound(body),
        "output_tokens": output_bound(body, model_max, call.model),
    }
    step = call.stream_step() if stream else None
    held = units if step is None else {**units, "output_tokens": min(step, units["output_tokens"])}
    settlement = await call.reserve(held, growable=step is not None)
    if isinstance(settlement, web.Response):
        return settlement
    async with settlement:
        if stream:
            hold = Hold(units, held["output_tokens"], step or units["output_tokens"])
            return await relay(request, call, settlement, hold, request.app[_CLIENT])
        return await _once(call, settlement, "/chat/completions", units, request.app[_CLIENT])


async def _embeddings(request: web.Request) -> web.StreamResponse:
    call = await _call(request)
    units = {"input_tokens": embeddings_input_bound(call.body)}
    settlement = await call.reserve(units)
    if isinstance(settlement, web.Response):
        return settlement
    async with settlement:
        return await _once(call, settlement, "/embeddings", units, request.app[_CLIENT])


async def _once(
    call: Call,
    settlement: Settlement,
    path: str,
    worst: dict[str, int],
    client: aiohttp.ClientSession,
) -> web.Response:
    """Forward, read the whole answer, commit its usage (or release on an upstream error)."""
    try:
        async with client.post(
            call.upstream.base_url + path, data=_encode(call.body), headers=call.headers()
        ) as upstream:
            raw = await upstream.read()
            status, content_type = upstream.status, upstream.content_type
    except (aiohttp.ClientError, TimeoutError) as error:
        await settlement.release()
        log.warning("upstream %s failed: %r", call.upstream.name, error)
        return upstream_failed(call.upstream.name, error)
    if status != 200:
        await settlement.release()
        return web.Response(body=raw, status=status, content_type=content_type)
    try:
        usage = _decode(raw).get("usage")
    except (msgspec.DecodeError, AttributeError):
        usage = None
    await settlement.commit_usage(usage, worst)
    return web.Response(
        body=raw, status=200, content_type="application/json", headers=settlement.headers()
    )


@web.middleware
async def _errors(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)  # type: ignore[no-any-return]
    except RequestError as error:
        return request_error(error)
    except _UnknownModel as error:
        return openai_error(
            404,
            f"The model {error.model!r} does not exist or is not served by this proxy",
            code="model_not_found",
            param="model",
        )
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[MAX_BODY_BYTES]
        return openai_error(413, f"request body is over {limit} bytes; send less", param="body")
    except web.HTTPException as error:
        if error.status < 400:
            raise
        return openai_error(error.status, error.reason)
    except Exception:
        log.exception("unhandled error in the proxy", extra={"path": request.path})
        return openai_error(500, "internal error; it is logged", code="internal")


def proxy_app(
    service: Service,
    upstreams: dict[str, Upstream],
    *,
    feature: str,
    max_body_bytes: int = 1_048_576,
) -> web.Application:
    app = web.Application(client_max_size=max_body_bytes, middlewares=[_errors])
    app[_SERVICE] = service
    app[_UPSTREAMS] = upstreams
    app[_FEATURE] = feature
    app[MAX_BODY_BYTES] = max_body_bytes
    app.router.add_post("/v1/chat/completions", _chat)
    app.router.add_post("/v1/embeddings", _embeddings)

    async def client(app: web.Application) -> Any:
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
        # No cookie jar: one session serves every customer, and a provider's cookies (set on
        # one customer's call) must not ride along on another's.
        async with aiohttp.ClientSession(
            connector=connector, timeout=UPSTREAM_TIMEOUT, cookie_jar=aiohttp.DummyCookieJar()
        ) as session:
            app[_CLIENT] = session
            yield

    app.cleanup_ctx.append(client)
    return app
