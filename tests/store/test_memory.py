"""The Redis memory bound: past it new reserves are refused with a clear scope, commits go on,
and reserves resume once Redis is back under it."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from sidecar.service import Service
from sidecar.store.memory import MEMORY_SCOPE, used_memory, watch_memory
from sidecar.store.redis_store import RedisStore
from sidecar.wire import CommitRequest, ReserveRequest
from tests.conftest import Setup

WAIT_S = 30.0
"""How long the watch may take to notice; only a bug takes this long."""


def _reserve(key: str) -> ReserveRequest:
    return ReserveRequest(
        customer="acme", feature="chat", model="small", units={"input_tokens": 1000},
        idempotency_key=key,
    )  # fmt: skip


def test_a_cluster_is_as_full_as_its_fullest_node() -> None:
    assert used_memory({"used_memory": 5}) == 5
    assert used_memory({"a:1": {"used_memory": 5}, "b:2": {"used_memory": 9}}) == 9


async def _watching(store: RedisStore, limit: int, full: bool) -> asyncio.Task[None]:
    task = asyncio.create_task(watch_memory(store, limit))
    async with asyncio.timeout(WAIT_S):
        while store.memory_full != full:
            await asyncio.sleep(0.02)
    return task


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@pytest.mark.redis
async def test_past_the_bound_reserves_are_refused_and_commits_go_on(
    service: Service, store: RedisStore, setup_customer: Setup
) -> None:
    await setup_customer(grants={"paid": "1"})
    held = await service.reserve(_reserve("before"))
    assert held.allowed
    task = await _watching(store, 1, full=True)  # any Redis uses more than a byte
    try:
        refused = await service.reserve(_reserve("during"))
        assert (refused.allowed, refused.reason, refused.scope) == (
            False, "store_unavailable", MEMORY_SCOPE,
        )  # fmt: skip
        commit = CommitRequest(reservation_id=held.reservation_id or "", units={"input_tokens": 1})
        assert (await service.commit(commit)).result == "committed"
    finally:
        await _stop(task)
    task = await _watching(store, 2**62, full=False)
    try:
        assert (await service.reserve(_reserve("after"))).allowed
    finally:
        await _stop(task)
