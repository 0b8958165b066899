"""An admin change made through one sidecar reaches another on the same Redis at once (in
milliseconds when the machine is idle), although each caches customers for 30 s: the change feed
(pub/sub) drops the stale entry."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from sidecar.server import Sidecar
from sidecar.store.layout import Layout
from sidecar.store.redis_store import RedisStore
from tests.http.conftest import Api, StartSidecar

pytestmark = pytest.mark.redis

SSO = {"customer": "acme", "feature": "sso"}
DEADLINE_S = 5.0
"""Far below the 30 s cache TTL, and far above what a busy machine adds to a publish."""


@pytest.fixture
async def pair(http: aiohttp.ClientSession, start_sidecar: StartSidecar) -> tuple[Api, Api]:
    """Two sidecars on one Redis; acme on plan free, cached by both."""
    first, second = Api(http, await start_sidecar()), Api(http, await start_sidecar())
    await first.seed(plan="free")
    await asyncio.sleep(0.2)  # the seed's own change notices, before warming
    for api in (first, second):
        assert api.sidecar.settings.cache_ttl_s == 30
        answer = await api.ok("/v1/check", SSO)
        assert (answer["allowed"], answer["reason"]) == (False, "feature_not_entitled")
        assert len(api.sidecar.service.customers) == 1  # the answer came through the cache
    return first, second


async def _until_allowed(api: Api) -> float:
    """Seconds until ``api`` allows sso; fails past DEADLINE_S."""
    start = time.monotonic()
    while time.monotonic() - start < DEADLINE_S:
        if (await api.ok("/v1/check", SSO))["allowed"]:
            return time.monotonic() - start
        await asyncio.sleep(0.005)
    raise AssertionError(f"still denied after {DEADLINE_S} s")


async def test_an_admin_change_reaches_the_other_sidecar_long_before_its_cache_expires(
    pair: tuple[Api, Api],
) -> None:
    first, second = pair
    start = time.monotonic()
    await first.admin_ok("PUT", "/admin/v1/customers/acme", {"plan": "enterprise"})
    await _until_allowed(second)
    assert time.monotonic() - start < DEADLINE_S
    assert (await first.ok("/v1/check", SSO))["allowed"] is True
    state = await second.ok("/v1/balance?customer=acme")
    assert state["plan"] == "enterprise"


async def test_the_change_feed_is_what_refreshes_the_cache(
    pair: tuple[Api, Api], store: RedisStore
) -> None:
    """Control: the same change written to Redis without a notice stays unseen (cached),
    and the notice alone makes both sidecars see it."""
    first, second = pair
    now_ms = time.time_ns() // 1_000_000
    await store.upsert_customer("acme", plan="enterprise", overrides="", now_ms=now_ms)
    await asyncio.sleep(0.3)
    for api in pair:
        assert (await api.ok("/v1/check", SSO))["reason"] == "feature_not_entitled"
    await store.publish(Layout().changes_channel, "acme")
    await _until_allowed(second)
    await _until_allowed(first)


async def test_each_sidecar_serves_through_its_subscribed_directory(sidecar: Sidecar) -> None:
    """The directory the change feed invalidates is the one the service reads."""
    assert sidecar.service.customers is sidecar.customers
