"""The connection to Redis (one node or a cluster): every driver call goes through here, and
every driver error leaves as StoreError; metrics and the up/down log line follow each call."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import (
    BusyLoadingError,
    ClusterDownError,
    MasterDownError,
    NoScriptError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisClusterException,
    RedisError,
    ResponseError,
    TryAgainError,
)

from sidecar.environment import LIVE
from sidecar.errors import StoreError
from sidecar.logs import safe_url
from sidecar.metrics import Metrics
from sidecar.store.batcher import Batcher, NotSent, Unreplicated
from sidecar.store.breaker import Breaker
from sidecar.store.layout import Layout
from sidecar.store.scripts import Script, load_scripts
from sidecar.store.topology import (
    agree_layout,
    check_health,
    is_cluster,
    make_client,
    mark_generation,
    node_url,
)

__all__ = ["RedisConnection"]

log = logging.getLogger(__name__)
_json = msgspec.json.Encoder()

_UNAVAILABLE = (
    BusyLoadingError, ClusterDownError, MasterDownError, OutOfMemoryError, ReadOnlyError,
    TryAgainError,
)  # fmt: skip


_MOVING = ("non local key", "TRYAGAIN", "during rehashing", "ASK ", "MOVED ")
"""What a script answers on a cluster while its slot moves to another node: it failed before
writing anything (lua/_lib.lua, ``guard``), and runs once the keys have moved."""
_MOVE_RETRY_S = (0.002, 0.05)
"""First and longest wait before running such a script again (doubling in between)."""


_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("deadline", default=None)
"""The loop time by which the request being served needs its Redis work done."""
_used: contextvars.ContextVar[bool] = contextvars.ContextVar("used", default=False)
"""Whether the request being served called Redis at all."""


def _moving(error: BaseException | None) -> bool:
    return isinstance(error, ResponseError) and any(text in str(error) for text in _MOVING)


def _lost(error: BaseException) -> bool:
    return isinstance(error, ResponseError) and str(error).startswith("LOSTSTATE")


def _unavailable(error: ResponseError) -> bool:
    """Replies that say this Redis cannot serve now (full, loading, a replica, a long script),
    as against an error of the command itself."""
    return isinstance(error, _UNAVAILABLE) or str(error).startswith("BUSY ")


class RedisConnection:
    """Async access to Redis: commands, scripts by SHA, pub/sub.

    On a cluster, each command goes to the node that owns its key's slot, MOVED and ASK are
    followed, and scripts are loaded on every primary. ``layout`` is the default one until
    ``agree_layout`` reads the deployment's.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 1.0,
        deadline_s: float | None = None,
        lanes: int = 4,
        connections: int = 16,
        wait_replicas: int = 0,
        wait_timeout_ms: int = 0,
        metrics: Metrics | None = None,
        environment: str = LIVE,
    ) -> None:
        self.url = url
        self.metrics = metrics if metrics is not None else Metrics()
        self.up = True
        """False from a failed command to the next one that succeeds: logged once each way."""
        self.timeout_s = timeout_s
        self.deadline_s = timeout_s if deadline_s is None else deadline_s
        """The Redis work of one request (queueing, connecting, every command) ends by then."""
        self.connections = connections
        # Scripts go through the batcher's ``lanes`` pipelines; other commands share the rest
        # of the ``connections`` (per node), bounded by a semaphore: redis-py's pool fails at
        # once past its maximum, and its blocking pool costs tens of microseconds a command.
        self._slots = asyncio.Semaphore(connections - lanes)
        self.client = make_client(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            max_connections=connections,
        )
        self.cluster = is_cluster(self.client)
        self.batcher = Batcher(
            self.client, lanes=lanes, replicas=wait_replicas, replica_timeout_ms=wait_timeout_ms
        )
        """Durable scripts (a commit) are answered once ``wait_replicas`` replicas hold them."""
        self.breaker = Breaker()
        self.lost = False
        """True from a LOSTSTATE refusal (lua/_lib.lua, ``require_state``) to the next answer:
        logged once."""
        self.memory_full = False
        """Redis at or past the memory bound (store/memory.py): new reserves are refused."""
        self._probe: asyncio.Task[None] | None = None
        self.layout = Layout(environment=environment)
        self.scripts = load_scripts()

    @contextlib.contextmanager
    def deadline(self) -> Iterator[None]:
        """Within this block (one request), all Redis work ends by one deadline."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        token, used = _deadline.set(started + self.deadline_s), _used.set(False)
        try:
            yield
        finally:
            if _used.get():
                share = min(1.0, (loop.time() - started) / self.deadline_s)
                self.metrics.redis_deadline_used.observe(share)
            _deadline.reset(token)
            _used.reset(used)

    def _deadline(self) -> float:
        return _deadline.get() or asyncio.get_running_loop().time() + self.deadline_s

    async def warm(self) -> None:
        """Open the connections now, so that the first burst of requests waits for none."""
        if self.cluster:
            await self._call(self.client.initialize, name="ping")
            return
        await asyncio.gather(*(self._call(self.client.ping) for _ in range(self.connections)))

    async def agree_layout(self, shards: int | None = None) -> Layout:
        """Adopt the deployment's layout (store/topology.py), and mark its generation if it
        has none yet; SettingsError if it disagrees."""
        self.layout = await self._call(
            agree_layout, self.client, shards, self.layout.environment, name="layout"
        )
        await self._call(mark_generation, self.client, self.layout, name="layout")
        return self.layout

    async def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
        await self.batcher.close()
        await self.client.aclose()

    async def _call(
        self, command: Callable[..., Awaitable[Any]], *args: Any, name: str | None = None
    ) -> Any:
        """Run one driver command (scripts: ``_script``) within the request's deadline.

        ``name`` labels its metrics; the default is the command's own name.
        """

        async def send(deadline: float) -> tuple[Any, int]:
            loop = asyncio.get_running_loop()
            if self._slots.locked():
                await asyncio.wait_for(self._slots.acquire(), deadline - loop.time())
            else:
                await self._slots.acquire()
            started = time.perf_counter_ns()  # the round trip, not the wait for a slot
            try:
                return await asyncio.wait_for(command(*args), deadline - loop.time()), started
            finally:
                self._slots.release()

        return await self._guarded(name or str(getattr(command, "__name__", "command")), send)

    async def _script(self, script: Script, key: str, arg: bytes, durable: bool) -> bytes:
        """EVALSHA through the batcher, within the request's deadline."""

        async def send(deadline: float) -> tuple[Any, int]:
            started = time.perf_counter_ns()  # queueing included: it is the wait a call has
            answer = await self.batcher.evalsha(deadline, script.sha, 1, key, arg, durable=durable)
            return answer, started

        return bytes(await self._guarded(script.name, send, script=True))

    async def _guarded(
        self,
        label: str,
        send: Callable[[float], Awaitable[tuple[Any, int]]],
        *,
        script: bool = False,
    ) -> Any:
        """The one place driver errors become StoreError: metrics, the breaker, up and down."""
        if self.breaker.open:  # Redis is down: answer now, a probe watches for its return
            raise StoreError("Redis is down (checked in the background); retry shortly")
        _used.set(True)
        try:
            result, started = await send(self._deadline())
        except (RedisError, RedisClusterException, OSError, TimeoutError) as error:
            if _lost(error):  # Redis is up and refuses: nothing was written, nothing to wait for
                self._lost_state(label, error)
                raise StoreError(str(error).partition(" script: ")[0]) from error
            if isinstance(error, Unreplicated):  # Redis is up; its replicas are behind
                self.metrics.redis_errors.labels(label).inc()
                raise StoreError(str(error), unknown=True) from error
            self._failed(label, error, lua=script)
            unknown = script and not isinstance(error, NotSent | ResponseError)
            raise StoreError(
                "Redis is unavailable or failed the command; retry", unknown=unknown
            ) from error
        self.metrics.redis_round_trip(label, started)
        self.breaker.closed()
        if script:  # a script ran: this shard, at least, is not lost
            self.lost = False
        if not self.up:
            self._back_up()
        return result

    def _back_up(self) -> None:
        self.up = True
        self.metrics.redis_up.set(1)
        log.info("redis up again", extra={"redis": safe_url(self.url)})

    async def _probe_until_up(self) -> None:
        """While the breaker is open: ping at growing intervals; close it on an answer."""
        while True:
            await asyncio.sleep(self.breaker.probe_in())
            try:
                await asyncio.wait_for(check_health(self.client), self.timeout_s)
            except (RedisError, RedisClusterException, OSError, TimeoutError):
                continue
            self.breaker.closed()
            if not self.up:
                self._back_up()
            return

    def _lost_state(self, label: str, error: BaseException) -> None:
        self.metrics.redis_errors.labels(label).inc()
        if not self.lost:
            self.lost = True
            log.error("redis lost its state: %s", error, extra={"redis": safe_url(self.url)})

    def _failed(self, label: str, error: BaseException, *, lua: bool) -> None:
        if isinstance(error, NoScriptError):  # after a Redis restart; loaded again at once
            return
        self.metrics.redis_errors.labels(label).inc()
        if _moving(error):  # a reshard in progress: Redis is up, and so is the script
            return
        if isinstance(error, ResponseError) and not _unavailable(error):
            if lua:  # Redis answered: it is up, and the script is wrong
                self.metrics.lua_errors.labels(label).inc()
                log.error("lua script %s failed: %s", label, error)
            return
        if self.breaker.failed(asyncio.get_running_loop().time()):
            # A context of its own: not the deadline of the request that tripped it.
            self._probe = asyncio.get_running_loop().create_task(
                self._probe_until_up(), context=contextvars.Context()
            )
        if self.up:
            self.up = False
            self.metrics.redis_up.set(0)
            log.error("redis down: %s", error or repr(error), extra={"redis": safe_url(self.url)})

    async def _run(
        self, script: Script, customer: str, payload: dict[str, Any], *, durable: bool = False
    ) -> bytes:
        """Run ``script`` for ``customer``; while its slot moves, again, until the timeout.
        A ``durable`` one is answered once the replicas required hold it (``Batcher``)."""
        key, arg = self.layout.customer_key(customer), _json.encode(payload)
        loop = asyncio.get_running_loop()
        deadline, wait = self._deadline(), _MOVE_RETRY_S[0]
        while True:
            try:
                return await self._evalsha(script, key, arg, durable)
            except StoreError as error:
                if not _moving(error.__cause__) or loop.time() + wait > deadline:
                    raise
            await asyncio.sleep(wait)
            wait = min(wait * 2, _MOVE_RETRY_S[1])

    async def _evalsha(self, script: Script, key: str, arg: bytes, durable: bool) -> bytes:
        try:
            return await self._script(script, key, arg, durable)
        except StoreError as error:
            if not isinstance(error.__cause__, NoScriptError):
                raise
        await self._call(self.client.script_load, script.source)
        return await self._script(script, key, arg, durable)

    def subscriber(self) -> aioredis.Redis:
        """A separate client for pub/sub: it waits for messages, so it has no read timeout.
        On a cluster, one node: every node forwards what is published to all of them."""
        url = node_url(self.url)
        return aioredis.Redis.from_url(url, socket_timeout=None, health_check_interval=30)

    async def publish(self, channel: str, message: str) -> None:
        await self._call(self.client.publish, channel, message)

    async def ping(self) -> bool:
        return bool(await self._call(check_health, self.client, name="ping"))
