"""Open-loop load: send times are fixed by the schedule, never by the previous reply.

Each request's latency is measured from the time the schedule *intended* to send it, so a
slow reply that delays later sends shows up in their latency too (no coordinated omission).
The generator runs in its own process, apart from the server it measures.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from typing import Any

import aiohttp
import grpc
import msgspec
import uvloop

from bench.bodies import make_body, make_message
from bench.stats import new_histogram, summarize
from sidecar.rpc.gen.creditgate.v1 import creditgate_pb2 as pb
from sidecar.rpc.gen.creditgate.v1 import creditgate_pb2_grpc as pb_grpc

__all__ = ["Load", "run_load"]


class Load:
    """What to send: a sequence of dependent operations per call, at a rate, for a time."""

    def __init__(
        self,
        base_url: str,
        steps: list[tuple[str, str]],
        *,
        rate: float,
        duration_s: float,
        warmup_s: float = 1.0,
        connections: int = 64,
        max_in_flight: int = 2_000,
        body_kind: str = "check",
        customer: str = "acme",
        transport: str = "http",
        customers: int = 1,
        zipf_s: float = 0.0,
    ) -> None:
        self.base_url = base_url
        self.steps = steps
        self.rate = rate
        self.duration_s = duration_s
        self.warmup_s = warmup_s
        self.connections = connections
        self.max_in_flight = max_in_flight
        self.body_kind = body_kind
        self.customer = customer
        self.transport = transport
        self.customers = customers
        self.zipf_s = zipf_s


class _Http:
    """Sends JSON bodies over aiohttp; a step is a path."""

    errors = (aiohttp.ClientError, OSError, TimeoutError)

    def __init__(self, load: Load) -> None:
        connector = aiohttp.TCPConnector(limit=load.connections)
        self.session = aiohttp.ClientSession(base_url=load.base_url, connector=connector)
        self.make = make_body(
            load.body_kind, customer=load.customer, customers=load.customers, zipf_s=load.zipf_s
        )

    async def send(
        self, i: int, name: str, path: str, context: dict[str, Any]
    ) -> tuple[str | None, Any]:
        """(failure key or denial reason or None, the answer)."""
        async with self.session.post(path, data=self.make(i, name, context)) as response:
            payload = await response.read()
        if response.status != 200:
            return f"error:{name}:{response.status}", None
        if b'"allowed":false' in payload:
            return msgspec.json.decode(payload)["reason"], None
        return None, payload

    async def close(self) -> None:
        await self.session.close()


class _Grpc:
    """Sends protobuf messages over a few grpc.aio channels; a step is an RPC name."""

    errors = (grpc.aio.AioRpcError, OSError)

    def __init__(self, load: Load) -> None:
        self.channels = [grpc.aio.insecure_channel(load.base_url) for _ in range(4)]
        self.stubs = [pb_grpc.CreditgateServiceStub(c) for c in self.channels]
        self.make = make_message(load.body_kind, customer=load.customer)

    async def send(
        self, i: int, name: str, path: str, context: dict[str, Any]
    ) -> tuple[str | None, Any]:
        stub = self.stubs[i % len(self.stubs)]
        answer = await getattr(stub, path)(self.make(i, name, context))
        if hasattr(answer, "allowed") and not answer.allowed:
            return pb.Reason.Name(answer.reason).removeprefix("REASON_").lower(), None
        return None, answer

    async def close(self) -> None:
        for channel in self.channels:
            await channel.close()


async def _drive(load: Load) -> dict[str, Any]:
    transport = _Grpc(load) if load.transport == "grpc" else _Http(load)
    histograms = {name: new_histogram() for name, _ in load.steps}
    total = new_histogram()
    answered = new_histogram()
    # every answer, allowed or denied (``total`` has the calls that went through)
    errors: dict[str, int] = {}
    denials: dict[str, int] = {}
    counts = {"sent": 0, "measured": 0, "dropped": 0}
    clock = time.perf_counter  # uvloop's loop.time() only ticks in milliseconds
    in_flight = 0
    try:

        async def call(i: int, intended: float, measured: bool) -> None:
            nonlocal in_flight
            context: dict[str, Any] = {}
            try:
                step_start = intended
                for name, path in load.steps:
                    failure, answer = await transport.send(i, name, path, context)
                    now = clock()
                    if failure is not None:
                        target = errors if failure.startswith("error:") else denials
                        target[failure] = target.get(failure, 0) + 1
                        if measured and target is denials:
                            answered.record_value(max(1, int((now - intended) * 1e6)))
                        return
                    context[name] = answer
                    if measured:
                        histograms[name].record_value(max(1, int((now - step_start) * 1e6)))
                    step_start = now
                if measured:
                    took = max(1, int((clock() - intended) * 1e6))
                    total.record_value(took)
                    answered.record_value(took)
                    counts["measured"] += 1
            except transport.errors as error:
                key = type(error).__name__
                errors[key] = errors.get(key, 0) + 1
            finally:
                in_flight -= 1

        calls = int(load.rate * (load.warmup_s + load.duration_s))
        cpu_start, wall_start = time.process_time(), clock()
        start = clock() + 0.1
        measure_from = start + load.warmup_s
        tasks = set()
        for i in range(calls):
            intended = start + i / load.rate
            delay = intended - clock()
            if delay > 0:
                await asyncio.sleep(delay)
            if in_flight >= load.max_in_flight:
                counts["dropped"] += 1
                continue
            in_flight += 1
            counts["sent"] += 1
            task = asyncio.create_task(call(i, intended, intended >= measure_from))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks)
        elapsed = clock() - measure_from
        generator_cpu = (time.process_time() - cpu_start) / max(clock() - wall_start, 1e-9)
    finally:
        await transport.close()
    out: dict[str, Any] = {
        "offered_rate": load.rate,
        "achieved_rate": counts["measured"] / max(elapsed, 1e-9),
        "errors": errors,
        "denials": denials,
        # Share of its core the generator used: near 1.0, it, not the server, was the limit.
        "generator_cpu_share": round(generator_cpu, 3),
        **counts,
        "total": summarize(total),
        "answered": summarize(answered),
        "steps": {name: summarize(h) for name, h in histograms.items()},
    }
    return out


def _child(load: Load) -> dict[str, Any]:
    return uvloop.run(_drive(load))


def run_load(load: Load) -> dict[str, Any]:
    """Run ``load`` in a separate process and return its measurements."""
    context = multiprocessing.get_context("spawn")
    started = time.monotonic()
    with context.Pool(1) as pool:
        result = pool.apply(_child, (load,))
    result["wall_s"] = time.monotonic() - started
    return dict(result)
