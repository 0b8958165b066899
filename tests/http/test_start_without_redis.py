"""A sidecar started while Redis does not answer waits for it, instead of exiting (and being
restarted with growing back-off): it serves as soon as Redis answers, and a stop while it waits
ends it cleanly."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from bench.faults import FaultProxy
from sidecar.server import Sidecar, StoppedWaiting
from sidecar.settings import Settings
from tests.conftest import EXAMPLE

pytestmark = pytest.mark.redis

SETTLE_S = 30.0
"""How long a test waits for what it expects: only a bug takes this long."""


def _settings(url: str) -> Settings:
    return Settings(
        catalog=str(EXAMPLE), redis=url, port=0, grpc=False,
        redis_timeout_ms=300, redis_deadline_ms=300,
    )  # fmt: skip


async def test_a_sidecar_started_while_redis_is_down_serves_once_it_answers(
    proxy: FaultProxy, caplog: pytest.LogCaptureFixture
) -> None:
    proxy.down(True)
    sidecar = Sidecar(_settings(proxy.url))
    starting = asyncio.create_task(sidecar.start())
    try:
        async with asyncio.timeout(SETTLE_S):
            while "waiting for Redis" not in caplog.text:  # it tried, and waits
                await asyncio.sleep(0.05)
        assert not starting.done()
        proxy.down(False)
        async with asyncio.timeout(SETTLE_S):
            await starting
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{sidecar.port}/readyz") as ready,
        ):
            assert ready.status == 200
    finally:
        starting.cancel()
        await sidecar.stop()


async def test_a_stop_while_waiting_for_redis_ends_the_start(proxy: FaultProxy) -> None:
    proxy.down(True)
    sidecar = Sidecar(_settings(proxy.url))
    stop = asyncio.Event()
    starting = asyncio.create_task(sidecar.start(stop))
    try:
        await asyncio.sleep(0.5)  # whether it has tried yet or not, the stop ends it
        stop.set()
        with pytest.raises(StoppedWaiting):
            async with asyncio.timeout(SETTLE_S):
                await starting
        assert sidecar.port is None  # no listener was opened
    finally:
        await sidecar.stop()
