"""The spool: calls Redis has not applied yet, on local disk, in the order they were answered.

What goes in (service/fallback.py): every reserve, commit and release answered in fallback,
and every commit or release whose outcome Redis never told. Each is written before it is
answered: SQLite (standard library) in WAL mode with ``synchronous=FULL``, so an entry that
was appended survives a crash of the process or the machine. Appends that arrive together
share one transaction and one fsync (group commit), on a thread of the spool's own, so the
event loop never waits on the disk.

The spool is bounded in entries and bytes; an append past the bound raises ``SpoolFull``.
Each environment has a file of its own in the directory, and one process at a time holds it
(an exclusive lock, released when the process ends, even killed): a spool replayed by two
sidecars, or by a sidecar of another environment, would apply its calls twice or in the
wrong place.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import msgspec

from sidecar.engine.decide import ReservePlan
from sidecar.engine.settle import Charge
from sidecar.environment import LIVE
from sidecar.errors import SettingsError
from sidecar.settings import SPOOL_MAX_BYTES, SPOOL_MAX_ENTRIES
from sidecar.store.records import Attribution

__all__ = [
    "FILE_NAME", "Entry", "Spool", "SpoolFull", "SpooledCommit",
    "SpooledRelease", "SpooledReserve", "file_name",
]  # fmt: skip

FILE_NAME = "spool.sqlite3"


def file_name(environment: str) -> str:
    """The spool file of ``environment`` in the spool directory."""
    return FILE_NAME if environment == LIVE else f"spool-{environment}.sqlite3"


class SpooledReserve(msgspec.Struct, frozen=True, kw_only=True, tag="reserve"):
    """A reserve answered allowed in fallback: replayed with ``force`` (no cap refuses it)."""

    customer: str
    reservation_id: str
    idempotency_key: str
    now_ms: int
    plan: ReservePlan
    attribution: Attribution


class SpooledCommit(msgspec.Struct, frozen=True, kw_only=True, tag="commit"):
    customer: str
    reservation_id: str
    now_ms: int
    charge: Charge
    catalog_version: str


class SpooledRelease(msgspec.Struct, frozen=True, kw_only=True, tag="release"):
    customer: str
    reservation_id: str
    now_ms: int


Entry = SpooledReserve | SpooledCommit | SpooledRelease
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(Entry).decode


class SpoolFull(Exception):
    """The spool holds as many entries or bytes as it may."""


class Spool:
    """Entries in append order, each with an id; ``remove`` once Redis has applied them.

    ``path``: a directory (the file is ``file_name(environment)`` in it), or None for an
    in-memory spool that a crash loses (tests, and deployments that set no spool directory).
    SettingsError when another process holds that file."""

    def __init__(
        self,
        path: str | None,
        *,
        max_entries: int = SPOOL_MAX_ENTRIES,
        max_bytes: int = SPOOL_MAX_BYTES,
        environment: str = LIVE,
    ) -> None:
        self.path = None if path is None else Path(path) / file_name(environment)
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._lock: int | None = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lock = _hold(self.path)
        self._db = sqlite3.connect(
            ":memory:" if self.path is None else self.path,
            isolation_level=None,
            check_same_thread=False,  # used by the spool's one thread only, after this
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS spool (id INTEGER PRIMARY KEY AUTOINCREMENT, "
            "body BLOB NOT NULL)"
        )
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS aliases (rid TEXT PRIMARY KEY, target TEXT NOT NULL, "
            "at_ms INTEGER NOT NULL)"
        )
        count, size = self._db.execute(
            "SELECT count(*), coalesce(sum(length(body)), 0) FROM spool"
        ).fetchone()
        self.entries, self.bytes = int(count), int(size)
        """What the spool holds now, counted from appends (room is taken before the write)."""
        self.full = 0
        """Appends refused for want of room, since start."""
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="spool")
        self._waiting: list[tuple[bytes, asyncio.Future[int]]] = []
        self._writer: asyncio.Task[None] | None = None
        self.closed = False

    def __len__(self) -> int:
        return self.entries

    def has_room(self) -> bool:
        return self.entries < self.max_entries and self.bytes < self.max_bytes

    async def append(self, entry: Entry) -> int:
        """Write ``entry`` durably and return its id; SpoolFull when there is no room (the
        same test as ``has_room``, so that a caller that checked first is not refused)."""
        body = _encode(entry)
        if not self.has_room():
            self.full += 1
            raise SpoolFull(
                f"the spool holds {self.entries} entries, {self.bytes} bytes "
                f"(at most {self.max_entries}, {self.max_bytes})"
            )
        self.entries += 1
        self.bytes += len(body)
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiting.append((body, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_waiting())
        # A caller that gives up does not stop the write: the entry is replayed all the same.
        return await asyncio.shield(done)

    async def _write_waiting(self) -> None:
        loop = asyncio.get_running_loop()
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                ids = await loop.run_in_executor(self._thread, self._insert, [b for b, _ in batch])
            except Exception as error:
                for body, done in batch:
                    self.entries -= 1
                    self.bytes -= len(body)
                    done.set_exception(error)
                continue
            for (_, done), entry_id in zip(batch, ids, strict=True):
                done.set_result(entry_id)

    def _insert(self, bodies: list[bytes]) -> list[int]:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            ids = [
                int(db.execute("INSERT INTO spool (body) VALUES (?)", (b,)).lastrowid or 0)
                for b in bodies
            ]
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return ids

    async def read(self, after: int = 0, limit: int = 256) -> list[tuple[int, Entry]]:
        """Up to ``limit`` entries with an id above ``after``, oldest first."""
        rows = await asyncio.get_running_loop().run_in_executor(
            self._thread, self._select, after, limit
        )
        return [(entry_id, _decode(body)) for entry_id, body in rows]

    def _select(self, after: int, limit: int) -> list[tuple[int, bytes]]:
        return self._db.execute(
            "SELECT id, body FROM spool WHERE id > ? ORDER BY id LIMIT ?", (after, limit)
        ).fetchall()

    async def remove(self, ids: list[int]) -> None:
        """Forget entries Redis has applied (a crash before this replays them: idempotent)."""
        if ids:
            freed = await asyncio.get_running_loop().run_in_executor(
                self._thread, self._delete, ids
            )
            self.entries -= len(ids)
            self.bytes -= freed

    def _delete(self, ids: list[int]) -> int:
        db, marks = self._db, ",".join("?" * len(ids))
        db.execute("BEGIN IMMEDIATE")
        (freed,) = db.execute(
            f"SELECT coalesce(sum(length(body)), 0) FROM spool WHERE id IN ({marks})", ids
        ).fetchone()
        db.execute(f"DELETE FROM spool WHERE id IN ({marks})", ids)
        db.execute("COMMIT")
        return int(freed)

    async def alias(self, rid: str, target: str, at_ms: int) -> None:
        """Record durably that call ``rid`` is held in Redis as ``target``."""
        await asyncio.get_running_loop().run_in_executor(
            self._thread, self._alias, rid, target, at_ms
        )

    def _alias(self, rid: str, target: str, at_ms: int) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO aliases (rid, target, at_ms) VALUES (?, ?, ?)",
            (rid, target, at_ms),
        )

    async def aliases(self, since_ms: int) -> dict[str, str]:
        """The aliases recorded at ``since_ms`` or later; older ones are forgotten."""
        return await asyncio.get_running_loop().run_in_executor(
            self._thread, self._aliases, since_ms
        )

    def _aliases(self, since_ms: int) -> dict[str, str]:
        self._db.execute("DELETE FROM aliases WHERE at_ms < ?", (since_ms,))
        rows = self._db.execute("SELECT rid, target FROM aliases").fetchall()
        return {str(rid): str(target) for rid, target in rows}

    async def close(self) -> None:
        """Finish the writes under way and close the file; a second call does nothing."""
        if self.closed:
            return
        self.closed = True
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)
        await asyncio.get_running_loop().run_in_executor(self._thread, self._db.close)
        self._thread.shutdown()
        if self._lock is not None:
            os.close(self._lock)  # releases the lock


def _hold(path: Path) -> int:
    """An exclusive lock on ``path``'s lock file, for this process; SettingsError if taken."""
    lock = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(lock)
        raise SettingsError(
            f"--spool-dir (or CREDITGATE_SPOOL_DIR): another process uses {path}; give each "
            "sidecar a spool directory of its own"
        ) from None
    return lock
