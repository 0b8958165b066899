"""A loopback TCP proxy that injects faults between a client and a real server: replies
delayed, every byte stalled, connections dropped. It runs on the test's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any


class FaultProxy:
    """Forwards ``127.0.0.1:<port>`` to ``127.0.0.1:<target>``; faults apply to the replies
    (server to client), so a request reaches the server and its answer is what is late or
    lost, as when a command runs and the connection fails."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.delay_s = 0.0
        """Each reply chunk is held this long before it is forwarded."""
        self.stalled = False
        """While set, replies are held (not lost); they flow again once it is cleared."""
        self.refusing = False
        """While set, Redis is down as far as clients can tell: every connection is closed."""
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[Any]] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def stall(self, on: bool) -> None:
        self.stalled = on
        if on:
            self._flowing.clear()
        else:
            self._flowing.set()

    def down(self, on: bool) -> None:
        """Redis unreachable (connections dropped, new ones closed at once), or back."""
        self.refusing = on
        if on:
            self.drop()

    def drop(self) -> None:
        """Close every connection now (replies in flight are lost)."""
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def stop(self) -> None:
        """Close everything and wait for every connection's handler to end."""
        if self._server is not None:
            self._server.close()
        self.stall(False)  # held replies resume, into closed connections
        self.drop()
        if self._handlers:
            await asyncio.wait(self._handlers, timeout=5)
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        if handler is not None:
            self._handlers.add(handler)
            handler.add_done_callback(self._handlers.discard)
        if self.refusing:
            client_w.transport.abort()
            return
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            client_w.transport.abort()
            return
        self._writers |= {client_w, server_w}
        await asyncio.gather(
            self._pipe(client_r, server_w, faulty=False),
            self._pipe(server_r, client_w, faulty=True),
        )
        for writer in (client_w, server_w):
            self._writers.discard(writer)
            writer.transport.abort()

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, faulty: bool
    ) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while chunk := await reader.read(65536):
                if faulty:
                    await self._flowing.wait()
                    if self.delay_s:
                        await asyncio.sleep(self.delay_s)
                if writer.transport.is_closing():
                    return
                writer.write(chunk)
                await writer.drain()
        writer.transport.abort()


class ThreadedProxy:
    """A FaultProxy on an event loop of its own, in a thread: for a caller without a loop
    (the bench harness)."""

    def __init__(self, target: int) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.proxy = self._run(FaultProxy(target).start())
        self.url = self.proxy.url

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    def set_delay(self, seconds: float) -> None:
        self._loop.call_soon_threadsafe(setattr, self.proxy, "delay_s", seconds)

    def stop(self) -> None:
        self._run(self.proxy.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
