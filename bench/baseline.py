"""The floor of this machine for the same protocol, measured in the same run.

* ``/echo``: aiohttp + uvloop, decodes the request with msgspec into the same struct the
  sidecar uses and encodes a response of the same shape; nothing else.
* ``/evalsha2``: the same, plus two EVALSHA of a trivial Lua script on the same Redis: the
  least any Redis-backed reserve + commit could cost.

Run: ``python -m bench.baseline --port P [--redis URL]``.
"""

from __future__ import annotations

import argparse

import msgspec
import redis.asyncio as aioredis
import uvloop
from aiohttp import web

from sidecar.wire import CheckRequest, CheckResponse, ReserveRequest, ReserveResponse

__all__ = ["baseline_app"]

TRIVIAL_LUA = "return ARGV[1]"
REDIS = web.AppKey("redis", aioredis.Redis)
SHA = web.AppKey("sha", str)
_encoder = msgspec.json.Encoder()
_check = msgspec.json.Decoder(CheckRequest)
_reserve = msgspec.json.Decoder(ReserveRequest)


async def _echo(request: web.Request) -> web.Response:
    body = _check.decode(await request.read())
    answer = CheckResponse(allowed=True, reason="ok", value=128000, catalog_version=body.feature)
    return web.Response(body=_encoder.encode(answer), content_type="application/json")


async def _evalsha2(request: web.Request) -> web.Response:
    body = _reserve.decode(await request.read())
    client, sha = request.app[REDIS], request.app[SHA]
    key = f"bench:{{c:{body.customer}}}"
    await client.evalsha(sha, 1, key, body.idempotency_key)
    await client.evalsha(sha, 1, key, body.idempotency_key)
    answer = ReserveResponse(allowed=True, reason="ok", reservation_id=body.idempotency_key)
    return web.Response(body=_encoder.encode(answer), content_type="application/json")


def baseline_app(redis_url: str | None) -> web.Application:
    app = web.Application()
    app.router.add_post("/echo", _echo)
    if redis_url is not None:
        client = aioredis.Redis.from_url(redis_url, max_connections=256)

        async def load_script(app: web.Application) -> None:
            app[SHA] = await client.script_load(TRIVIAL_LUA)

        async def close(app: web.Application) -> None:
            await client.aclose()

        app[REDIS] = client
        app.on_startup.append(load_script)
        app.on_cleanup.append(close)
        app.router.add_post("/evalsha2", _evalsha2)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis")
    args = parser.parse_args()
    uvloop.install()
    web.run_app(
        baseline_app(args.redis),
        host="127.0.0.1",
        port=args.port,
        access_log=None,
        print=None,
        handle_signals=True,
    )


if __name__ == "__main__":
    main()
