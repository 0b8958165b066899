"""Process lifecycle shared by the servers, the embedded databases and the benchmarks."""

from __future__ import annotations

import asyncio
import signal
import subprocess

__all__ = ["stop_on_signals", "stop_process"]


def stop_process(
    process: subprocess.Popen[bytes], timeout_s: float, signum: int = signal.SIGTERM
) -> None:
    """Ask ``process`` to stop with ``signum``; kill it if it is still there after the timeout."""
    if process.poll() is not None:
        return
    process.send_signal(signum)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT, for a server to wait on before shutting down."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    return stop
