"""The spool: durable, ordered, bounded; an append that returned survives a SIGKILL."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from sidecar.errors import SettingsError
from sidecar.service.spool import Spool, SpooledRelease, SpoolFull

WRITER = """
import asyncio, sys
from sidecar.service.spool import Spool, SpooledRelease

async def main():
    spool = Spool(sys.argv[1])
    i = 0
    while True:  # until killed: each id printed only once its append returned
        entry_id = await spool.append(SpooledRelease(customer="acme", reservation_id=f"r-{i}",
                                                     now_ms=i))
        print(entry_id, flush=True)
        i += 1

asyncio.run(main())
"""


def _release(i: int) -> SpooledRelease:
    return SpooledRelease(customer="acme", reservation_id=f"r-{i}", now_ms=i)


async def test_entries_come_back_in_order_and_leave_once_removed(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path))
    ids = await asyncio.gather(*(spool.append(_release(i)) for i in range(50)))  # group commit
    assert sorted(ids) == ids
    read = await spool.read(0, 100)
    assert [entry.reservation_id for _, entry in read] == [f"r-{i}" for i in range(50)]
    await spool.remove(ids[:20])
    assert len(spool) == 30
    await spool.close()
    reopened = Spool(str(tmp_path))
    assert (len(reopened), reopened.bytes) == (30, spool.bytes)
    assert (await reopened.read(0, 1))[0][1] == _release(20)
    await reopened.close()


async def test_a_full_spool_refuses_and_counts(tmp_path: Path) -> None:
    spool = Spool(None, max_entries=2)
    await spool.append(_release(0))
    await spool.append(_release(1))
    assert not spool.has_room()
    with pytest.raises(SpoolFull, match="at most 2"):
        await spool.append(_release(2))
    assert (len(spool), spool.full) == (2, 1)
    await spool.close()


@pytest.mark.skipif(sys.platform != "linux", reason="SIGKILL semantics")
async def test_every_append_that_returned_survives_a_sigkill(tmp_path: Path) -> None:
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout is not None
    acknowledged = [int(writer.stdout.readline()) for _ in range(200)]
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    acknowledged += [int(line) for line in writer.stdout.read().split()]
    writer.stdout.close()
    spool = Spool(str(tmp_path))
    stored = {entry_id for entry_id, _ in await spool.read(0, 1_000_000)}
    assert set(acknowledged) <= stored
    await spool.close()


async def test_one_process_holds_a_spool_and_each_environment_has_its_own(
    tmp_path: Path,
) -> None:
    live = Spool(str(tmp_path))
    with pytest.raises(SettingsError, match=r"another process uses .*/spool\.sqlite3"):
        Spool(str(tmp_path))  # a second sidecar on the same directory would replay it too
    sandbox = Spool(str(tmp_path), environment="sandbox")
    await live.append(_release(1))
    assert (len(live), len(sandbox)) == (1, 0)
    await sandbox.close()
    await live.close()
    again = Spool(str(tmp_path))  # released on close (and when a process dies)
    assert len(again) == 1
    await again.close()
