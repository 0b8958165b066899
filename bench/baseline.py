"""The floor of this machine for the same protocols, measured in the same run.

* ``POST /echo``: aiohttp + uvloop, decodes the request with msgspec into the same struct the
  sidecar uses and encodes a response of the same shape; nothing else.
* ``POST /evalsha1``: the same, plus one EVALSHA of a trivial Lua script on the same Redis:
  the least any Redis-backed reserve could cost.
* ``POST /evalsha2``: two EVALSHA in one request: the least a reserve + commit could cost.
* gRPC (same proto as the sidecar): ``Check`` answers a fixed response, ``Reserve`` does the
  two EVALSHA; bare grpc.aio unary handlers with nothing else.

Run: ``python -m bench.baseline --port P --grpc-port G --redis URL``.
"""

from __future__ import annotations

import argparse
from typing import Any

import grpc
import msgspec
import redis.asyncio as aioredis
import uvloop
from aiohttp import web

from sidecar.lifecycle import stop_on_signals
from sidecar.rpc.gen.creditgate.v1 import creditgate_pb2 as pb
from sidecar.rpc.gen.creditgate.v1 import creditgate_pb2_grpc as pb_grpc
from sidecar.wire import CheckRequest, CheckResponse, ReserveRequest, ReserveResponse

__all__ = ["main"]

TRIVIAL_LUA = "return ARGV[1]"
_encoder = msgspec.json.Encoder()
_check = msgspec.json.Decoder(CheckRequest)
_reserve = msgspec.json.Decoder(ReserveRequest)


class Bare(pb_grpc.CreditgateServiceServicer):
    """The baseline handlers, over one Redis client and one loaded script."""

    def __init__(self, redis_url: str) -> None:
        self.client = aioredis.Redis.from_url(redis_url, max_connections=256)
        self.sha = ""

    async def evalsha1(self, request: web.Request) -> web.Response:
        body = _reserve.decode(await request.read())
        await self.client.evalsha(self.sha, 1, f"bench:{{c:{body.customer}}}", body.idempotency_key)
        answer = ReserveResponse(allowed=True, reason="ok", reservation_id=body.idempotency_key)
        return web.Response(body=_encoder.encode(answer), content_type="application/json")

    async def evalsha2(self, customer: str, key: str) -> None:
        name = f"bench:{{c:{customer}}}"
        await self.client.evalsha(self.sha, 1, name, key)
        await self.client.evalsha(self.sha, 1, name, key)

    async def echo(self, request: web.Request) -> web.Response:
        body = _check.decode(await request.read())
        answer = CheckResponse(
            allowed=True, reason="ok", value=128000, catalog_version=body.feature
        )
        return web.Response(body=_encoder.encode(answer), content_type="application/json")

    async def evalsha2_http(self, request: web.Request) -> web.Response:
        body = _reserve.decode(await request.read())
        await self.evalsha2(body.customer, body.idempotency_key)
        answer = ReserveResponse(allowed=True, reason="ok", reservation_id=body.idempotency_key)
        return web.Response(body=_encoder.encode(answer), content_type="application/json")

    async def Check(self, request: pb.CheckRequest, context: Any) -> pb.CheckResponse:
        return pb.CheckResponse(
            allowed=True, reason=pb.REASON_OK, int_value=128000, catalog_version=request.feature
        )

    async def Reserve(self, request: pb.ReserveRequest, context: Any) -> pb.ReserveResponse:
        await self.evalsha2(request.customer, request.idempotency_key)
        return pb.ReserveResponse(
            allowed=True, reason=pb.REASON_OK, reservation_id=request.idempotency_key
        )


async def serve(port: int, grpc_port: int, redis_url: str) -> None:
    bare = Bare(redis_url)
    bare.sha = await bare.client.script_load(TRIVIAL_LUA)
    app = web.Application()
    app.router.add_post("/echo", bare.echo)
    app.router.add_post("/evalsha1", bare.evalsha1)
    app.router.add_post("/evalsha2", bare.evalsha2_http)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    pb_grpc.add_CreditgateServiceServicer_to_server(bare, server)
    server.add_insecure_port(f"127.0.0.1:{grpc_port}")
    await server.start()
    await stop_on_signals().wait()
    await server.stop(1)
    await runner.cleanup()
    await bare.client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--grpc-port", type=int, required=True)
    parser.add_argument("--redis", required=True)
    args = parser.parse_args()
    uvloop.run(serve(args.port, args.grpc_port, args.redis))


if __name__ == "__main__":
    main()
