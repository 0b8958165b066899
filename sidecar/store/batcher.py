"""Auto-pipelining of script calls: every call made while the lanes are busy goes to Redis in
the next pipeline, over a fixed, small number of connections.

One EVALSHA costs a Python client about 100 µs of CPU on its own and about 30 µs in a pipeline
of many, while Redis itself spends a few microseconds on the round trip; so concurrent calls
are queued, and each free lane sends everything queued as one pipeline (on a cluster, one per
node, in parallel) and hands each caller its own answer. At most ``lanes`` pipelines are in
flight, so at most ``lanes`` connections per node are ever open: a burst of calls costs a few
pipelines, never a connection each. On one node, each lane keeps a connection of its own
between calls and writes to it directly: redis-py's pool round (a lock, its bookkeeping)
costs a call about 60 µs, more than the loopback round trip's share of the client.

Each call has a deadline. A call still queued when it passes is dropped before it is sent
(it did not run: ``NotSent``); a call sent whose answer has not come by then ends with
``Unanswered`` (it may have run: service/unsettled.py resolves it), and its late answer is
dropped.

With ``replicas`` set, a pipeline that carries a *durable* call (a commit) ends with ``WAIT
replicas timeout`` on the same connection (on a cluster, on each node such a call went to),
so its answer comes only once that many replicas hold what it wrote; when fewer acknowledged
in time, the durable calls end with ``Unreplicated`` (they ran on the primary; the caller
treats the outcome as unknown, as for a lost answer).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from redis.exceptions import ResponseError

__all__ = ["Batcher", "NotSent", "QueueFull", "Unanswered", "Unreplicated"]


class NotSent(TimeoutError):
    """The deadline passed before the call was sent: it did not run."""


class QueueFull(NotSent):
    """Too many calls are waiting already: refused at once, not sent."""


class Unanswered(TimeoutError):
    """The call was sent and its answer did not come before the deadline: it may have run."""


class Unreplicated(Unanswered):
    """The call ran on the primary, and fewer replicas than required acknowledged it in time."""


class _Call:
    __slots__ = ("args", "durable", "future", "sent")

    def __init__(self, args: tuple[Any, ...], future: asyncio.Future[Any], durable: bool) -> None:
        self.args = args
        self.future = future
        self.durable = durable
        self.sent = False


def _drop_late(done: asyncio.Future[Any]) -> None:
    """Nobody waits for this answer any more: read its error, so that none is reported."""
    if not done.cancelled():
        done.exception()


class Batcher:
    """Script calls through ``client``'s pipelines, at most ``lanes`` in flight."""

    def __init__(
        self,
        client: Any,
        *,
        lanes: int = 4,
        queue_max: int = 10_000,
        replicas: int = 0,
        replica_timeout_ms: int = 0,
    ) -> None:
        self.client = client
        self.lanes = lanes
        self.queue_max = queue_max
        self.replicas = replicas
        self.replica_timeout_ms = replica_timeout_ms
        self._queue: list[_Call] = []
        self._busy = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._direct = not hasattr(client, "get_node_from_key")
        """One node: lanes write to connections of their own (a cluster routes by slot)."""
        self._idle: list[Any] = []
        """Those connections, while no lane holds them (they reconnect by themselves)."""

    async def evalsha(self, deadline: float, *args: Any, durable: bool = False) -> Any:
        """``EVALSHA *args``; raises the command's own error, NotSent or Unanswered (and, for
        a ``durable`` call, Unreplicated)."""
        loop = asyncio.get_running_loop()
        if len(self._queue) >= self.queue_max:
            raise QueueFull(f"{len(self._queue)} calls waiting for Redis already")
        call = _Call(args, loop.create_future(), durable and self.replicas > 0)
        self._queue.append(call)
        if self._busy < self.lanes:
            self._start()
        try:
            return await asyncio.wait_for(asyncio.shield(call.future), deadline - loop.time())
        except Unreplicated:
            raise
        except TimeoutError:
            if not call.sent:
                self._queue.remove(call)
                raise NotSent("the deadline passed before the call was sent") from None
            call.future.add_done_callback(_drop_late)
            raise Unanswered("sent; no answer before the deadline") from None

    def _start(self) -> None:
        self._busy += 1
        task = asyncio.get_running_loop().create_task(self._lane())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _lane(self) -> None:
        """Send what is queued, one pipeline at a time, until nothing is."""
        connection = None
        if self._direct:
            pool = self.client.connection_pool
            connection = self._idle.pop() if self._idle else pool.make_connection()
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                await self._send(batch, connection)
        finally:
            self._busy -= 1
            if connection is not None:
                self._idle.append(connection)

    async def _write(self, connection: Any, batch: list[_Call]) -> tuple[list[Any], set[Any]]:
        """The batch (and a WAIT behind its durable calls) on ``connection``, as one write;
        each answer, an error reply as the call's answer."""
        commands: list[tuple[Any, ...]] = [("EVALSHA", *call.args) for call in batch]
        if any(call.durable for call in batch):
            commands.append(("WAIT", self.replicas, self.replica_timeout_ms))
        for call in batch:
            call.sent = True
        await connection.send_packed_command(connection.pack_commands(commands))
        answers: list[Any] = []
        for _ in commands:
            try:
                answers.append(await connection.read_response())
            except ResponseError as error:
                answers.append(error)
        short = self._short([None], answers[len(batch) :]) if len(commands) > len(batch) else set()
        return answers[: len(batch)], short

    async def _send(self, batch: list[_Call], connection: Any) -> None:
        durable = [call for call in batch if call.durable]
        try:
            if connection is not None:
                answers, short = await self._write(connection, batch)
            elif len(batch) == 1 and not durable:  # a free lane: no pipeline to build and parse
                batch[0].sent = True
                answers, short = [await self._one(batch[0])], set()
            else:
                async with self.client.pipeline(transaction=False) as pipe:
                    for call in batch:
                        pipe.evalsha(*call.args)
                        call.sent = True
                    nodes = self._wait_for(pipe, durable)
                    answers = await pipe.execute(raise_on_error=False)
                short = self._short(nodes, answers[len(batch) :])
                answers = answers[: len(batch)]
        except Exception as error:  # the whole round trip failed: every call gets it
            for call in batch:
                if not call.future.done():
                    call.future.set_exception(error)
            return
        except BaseException:  # closing
            for call in batch:
                call.future.cancel()
            raise
        for call, answer in zip(batch, answers, strict=True):
            if call.future.done():
                continue
            if isinstance(answer, BaseException):
                call.future.set_exception(answer)
            elif self._unreplicated(call, short):
                call.future.set_exception(
                    Unreplicated(
                        f"ran on the primary; fewer than {self.replicas} replicas acknowledged "
                        f"it within {self.replica_timeout_ms} ms"
                    )
                )
            else:
                call.future.set_result(answer)

    def _wait_for(self, pipe: Any, durable: list[_Call]) -> list[Any]:
        """Queue a WAIT behind the durable calls, on each node they go to; the nodes (on one
        Redis, ``[None]``; none without durable calls)."""
        if not durable:
            return []
        wait = ("WAIT", self.replicas, self.replica_timeout_ms)
        if not hasattr(self.client, "get_node_from_key"):
            pipe.execute_command(*wait)
            return [None]
        nodes = list({n.name: n for n in (self._node(call) for call in durable)}.values())
        for node in nodes:
            pipe.execute_command(*wait, target_nodes=node)
        return nodes

    def _node(self, call: _Call) -> Any:
        return self.client.get_node_from_key(call.args[2])  # EVALSHA sha 1 key arg

    def _short(self, nodes: list[Any], acked: list[Any]) -> set[str | None]:
        """The nodes (on one Redis, ``None``) whose WAIT counted fewer replicas than required."""
        return {
            None if node is None else node.name
            for node, count in zip(nodes, acked, strict=True)
            if isinstance(count, BaseException) or int(count) < self.replicas
        }

    def _unreplicated(self, call: _Call, short: set[str | None]) -> bool:
        if not call.durable or not short:
            return False
        return (None if None in short else self._node(call).name) in short

    async def _one(self, call: _Call) -> Any:
        """One call on its own; its error reply is its answer, as in a pipeline."""
        try:
            return await self.client.evalsha(*call.args)
        except ResponseError as error:
            return error

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        for connection in self._idle:
            await connection.disconnect()
        self._idle.clear()
