"""What the harness measures, started by the harness: Redis, the sidecar, the baselines.

Every process listens on loopback only and is stopped when the run ends.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from sidecar.embedded import free_port
from sidecar.lifecycle import stop_process

__all__ = [
    "CATALOG", "HARNESS_CPU", "ROOT", "SERVER_CPU", "Process", "pin", "pin_harness",
    "rss_bytes", "start_baseline", "start_sidecar",
]  # fmt: skip

ROOT = Path(__file__).resolve().parent.parent
CATALOG = ROOT / "bench" / "catalog.yaml"
ADMIN_TOKEN = "bench-admin-token-0123456789"


SERVER_CPU, HARNESS_CPU = 0, 1
"""The server under test (sidecar or baseline) runs on one core; valkey, the load generator
and the harness on the other, where the machine has two."""


def _two_cores() -> bool:
    return len(os.sched_getaffinity(0)) >= 2 or os.cpu_count() == 2


def pin(pid: int, cpu: int) -> None:
    """Pin process ``pid`` (0: this one, and what it starts after) to ``cpu``, on two cores."""
    if _two_cores():
        os.sched_setaffinity(pid, {cpu})


def pin_harness() -> None:
    """Pin this process, and so everything it starts after (valkey, the load generator), to
    the harness core."""
    pin(0, HARNESS_CPU)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=0.5):
            return True
    except urllib.error.HTTPError:
        return True  # it answered, if only to say no
    except OSError:
        return False


class Process:
    """A child process serving HTTP on a loopback port."""

    def __init__(self, command: list[str], port: int, ready_path: str, admin_url: str = "") -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.admin_url = admin_url
        self.grpc_target = ""
        # Its log goes to a file: a pipe nobody reads fills up under load (a sidecar logging
        # a warning per failed call), and the process then blocks on its next log line.
        self.log = tempfile.NamedTemporaryFile(prefix="creditgate-bench-", suffix=".log")  # noqa: SIM115
        self.process = subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=self.log
        )
        pin(self.process.pid, SERVER_CPU)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{command} exited: {Path(self.log.name).read_text()}")
            if _answers(self.url + ready_path):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{command} did not answer on {self.url}{ready_path}")

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        stop_process(self.process, 15)
        self.log.close()


PATIENT_MS = "10000"
"""Smoke mode checks correctness only: a Redis deadline that no busy machine reaches."""


def start_sidecar(
    redis_url: str,
    *,
    cache_max_entries: int = 100_000,
    patient: bool = False,
    extra: dict[str, str] | None = None,
) -> Process:
    """``creditgate serve`` with its defaults, or with a generous Redis deadline (smoke)."""
    port, admin_port, grpc_port, grpc_admin_port = (free_port() for _ in range(4))
    command = [
        sys.executable, "-m", "sidecar.cli", "serve",
        "--catalog", str(CATALOG), "--redis", redis_url,
        "--port", str(port), "--admin-port", str(admin_port), "--admin-token", ADMIN_TOKEN,
        "--grpc-port", str(grpc_port), "--grpc-admin-port", str(grpc_admin_port),
        "--cache-max-entries", str(cache_max_entries),
    ]  # fmt: skip
    if patient:
        command += ["--redis-deadline-ms", PATIENT_MS, "--redis-timeout-ms", PATIENT_MS]
    command += [arg for flag, value in (extra or {}).items() for arg in (flag, value)]
    process = Process(command, port, "/readyz", admin_url=f"http://127.0.0.1:{admin_port}")
    process.grpc_target = f"127.0.0.1:{grpc_port}"
    return process


def start_baseline(redis_url: str) -> Process:
    port, grpc_port = free_port(), free_port()
    command = [
        sys.executable, "-m", "bench.baseline",
        "--port", str(port), "--grpc-port", str(grpc_port), "--redis", redis_url,
    ]  # fmt: skip
    process = Process(command, port, "/nothing-here")
    process.grpc_target = f"127.0.0.1:{grpc_port}"
    return process


def rss_bytes(pid: int) -> int:
    """Resident memory of a process, from /proc (the harness runs on Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")
