"""python -m bench.ingest: how fast one ledger worker ships consumption into PostgreSQL.

Starts what it measures on loopback: a valkey-server and a PostgreSQL (embedded, with its
crash-safe defaults: fsync on), and the ledger as deployed (``creditgate ledger serve``, one
worker, its own process). Events are real: a sidecar service in this process commits calls
through ``commit.lua``, and those entries are cloned (fresh reservation ids and times) over
``--customers`` per-customer streams.

Two measurements:

* **drain**: ``--backlog`` events waiting in the streams; the ledger is started and stores
  them all. Reported: events/s from the first to the last stored batch.
* **sustained**: a producer process appends ``--rate`` events/s (open loop: the schedule, not
  the ledger, sets the pace) for ``--seconds``; every 250 ms the stream lag is sampled: entries
  appended and not yet stored and acknowledged, and the age of the oldest of them. The ledger
  keeps up when the lag stays bounded and drains to 0 once the producer stops.

CPU seconds of each process are reported: on a 2-core machine they share the cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from sidecar.catalog import load_catalog
from sidecar.embedded import EmbeddedRedis, free_port
from sidecar.ledger.embedded_pg import EmbeddedPostgres
from sidecar.ledger.streams import StreamReader
from sidecar.lifecycle import stop_process
from sidecar.reservations import new_reservation_id
from sidecar.service import Service
from sidecar.store.layout import Layout
from sidecar.store.redis_store import RedisStore
from sidecar.wire import (
    CommitRequest,
    GrantRequest,
    ReserveRequest,
    UpsertCustomerRequest,
)

ROOT = Path(__file__).resolve().parent.parent
CATALOG = ROOT / "policies" / "example.yaml"
TOKEN = "bench-ledger-token-0123456789"
TICK_S = 0.01
SAMPLE_S = 0.25

Fields = dict[bytes, bytes]
LAYOUT = Layout()
"""The default layout, which the bench's own Redis gets."""


async def _templates(redis_url: str) -> list[Fields]:
    """Debit entries written by commit.lua for a spread of real calls."""
    store = RedisStore(redis_url)
    await store.agree_layout()  # as a sidecar starting on it
    service = Service(store, load_catalog(CATALOG))
    await service.upsert_customer("tmpl", UpsertCustomerRequest(plan="pro"))
    await service.grant(
        "tmpl", GrantRequest(credit_type="paid", amount="1000", idempotency_key="t")
    )
    for i in range(24):
        hold = await service.reserve(
            ReserveRequest(
                customer="tmpl", feature="chat", model=("gpt-4o-mini", "gpt-4o")[i % 2],
                team=f"team-{i % 3}", user=f"u-{i % 7}", agent=f"agent-{i % 4}",
                session=f"run-{i}", units={"input_tokens": 4000, "output_tokens": 1000},
                idempotency_key=f"tmpl-{i}", tags={"workflow": "bench"},
            )
        )  # fmt: skip
        await service.commit(
            CommitRequest(
                reservation_id=hold.reservation_id or "",
                units={"input_tokens": 1000 + 37 * i, "output_tokens": 200 + 11 * i},
            )
        )
    entries: Any = await store.client.xrange(LAYOUT.stream_of("tmpl"))
    await store.client.flushall()  # the bench's own server: the template customer goes
    await store.close()
    return [fields for _, fields in entries if fields[b"kind"] == b"debit"]


def _clone(template: Fields, customer: str, now_ms: int, serial: int) -> Fields:
    fields = dict(template)
    fields[b"event_id"] = new_reservation_id(customer, now_ms).encode()
    fields[b"customer"] = customer.encode()
    fields[b"request_id"] = f"bench-{serial}".encode()
    fields[b"ts"] = str(now_ms).encode()
    return fields


async def _append(
    client: aioredis.Redis, templates: list[Fields], customers: list[str], first: int, count: int
) -> None:
    now = time.time_ns() // 1_000_000
    async with client.pipeline(transaction=False) as pipe:
        for serial in range(first, first + count):
            customer = customers[serial % len(customers)]
            template = templates[serial % len(templates)]
            fields: Any = _clone(template, customer, now, serial)
            pipe.xadd(LAYOUT.stream_of(customer), fields)
        await pipe.execute()


async def _produce(
    redis_url: str, templates: list[Fields], customers: list[str], rate: int, seconds: float
) -> dict[str, float]:
    client = aioredis.Redis.from_url(redis_url)
    sent, start = 0, time.monotonic()
    late_max_s = 0.0
    while (elapsed := time.monotonic() - start) < seconds:
        due = int(elapsed * rate)
        if due > sent:
            await _append(client, templates, customers, sent, due - sent)
            late_max_s = max(late_max_s, time.monotonic() - start - elapsed)
            sent = due
        await asyncio.sleep(TICK_S)
    await client.aclose()
    return {"sent": sent, "seconds": time.monotonic() - start, "late_max_s": late_max_s}


def _producer(redis_url: str, templates: list[Fields], customers: list[str], rate: int,
              seconds: float, out: Any) -> None:  # fmt: skip
    out.put(asyncio.run(_produce(redis_url, templates, customers, rate, seconds)))


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of one process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _postgres_cpu_s(postmaster: int) -> float:
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(entry.name) == postmaster or int(stat[1]) == postmaster:
                    total += (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
            except (OSError, ValueError):
                continue
    return total


class Ledger:
    """``creditgate ledger serve`` with one worker, in its own process."""

    def __init__(self, redis_url: str, database_url: str) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sidecar.cli", "ledger", "serve", "--catalog", str(CATALOG),
             "--redis", redis_url, "--database-url", database_url, "--port", str(self.port),
             "--token", TOKEN, "--workers", "1"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                error = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"the ledger exited: {error}")
            try:
                self.status()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the ledger did not answer")

    def status(self) -> dict[str, Any]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/ledger/v1/status",
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            return dict(json.loads(response.read()))

    def stored(self) -> int:
        return int(self.status()["workers"][0]["stored"])

    def stop(self) -> None:
        stop_process(self.process, 15)


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


async def _lag(reader: StreamReader) -> tuple[int, float]:
    lag = await reader.lag()
    now = time.time_ns() // 1_000_000
    age_ms = float(now - lag.oldest_ms) if lag.oldest_ms is not None else 0.0
    return lag.entries, age_ms


async def _wait_drained(
    reader: StreamReader, ledger: Ledger, expected: int, timeout_s: float
) -> float:
    """Seconds until every expected event is stored and acknowledged."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        entries, _ = await _lag(reader)
        if entries == 0 and ledger.stored() >= expected:
            return time.monotonic() - start
        await asyncio.sleep(0.05)
    raise RuntimeError(f"not drained in {timeout_s} s")


async def _run(args: argparse.Namespace, redis_url: str, pg: EmbeddedPostgres) -> dict[str, Any]:
    customers = [f"cust-{i:04d}" for i in range(args.customers)]
    templates = await _templates(redis_url)
    client = aioredis.Redis.from_url(redis_url)
    reader = StreamReader(client, LAYOUT, group="ledger", consumer="bench-observer")

    for offset in range(0, args.backlog, 5000):  # the backlog, before the ledger starts
        await _append(client, templates, customers, offset, min(5000, args.backlog - offset))
    valkey_pid = int((await client.info("server"))["process_id"])
    assert pg.process is not None
    postmaster = pg.process.pid
    cpu = {"valkey": _cpu_s(valkey_pid), "postgres": _postgres_cpu_s(postmaster)}
    started = time.monotonic()
    ledger = Ledger(redis_url, pg.url)
    samples: list[tuple[float, int]] = []
    try:
        while True:
            stored = ledger.stored()
            samples.append((time.monotonic(), stored))
            if stored >= args.backlog:
                break
            await asyncio.sleep(0.05)
        first, first_n = next((t, n) for t, n in samples if n > 0)
        drain_s = samples[-1][0] - first
        drain = {
            "events": args.backlog,
            "startup_s": round(first - started, 2),
            "seconds": round(drain_s, 2),
            "events_per_s": round((samples[-1][1] - first_n) / drain_s) if drain_s else None,
            "cpu_s": {
                "ledger": round(_cpu_s(ledger.process.pid), 2),
                "postgres": round(_postgres_cpu_s(postmaster) - cpu["postgres"], 2),
                "valkey": round(_cpu_s(valkey_pid) - cpu["valkey"], 2),
            },
        }
        print(f"drain: {drain}", file=sys.stderr)

        cpu = {
            "ledger": _cpu_s(ledger.process.pid),
            "postgres": _postgres_cpu_s(postmaster),
            "valkey": _cpu_s(valkey_pid),
        }
        before = ledger.stored()
        results: Any = multiprocessing.get_context("spawn").Queue()
        producer = multiprocessing.get_context("spawn").Process(
            target=_producer,
            args=(redis_url, templates, customers, args.rate, args.seconds, results),
        )
        start = time.monotonic()
        producer.start()
        lags: list[tuple[int, float]] = []
        while producer.is_alive():
            lags.append(await _lag(reader))
            await asyncio.sleep(SAMPLE_S)
        produced = results.get(timeout=10)
        producer.join()
        after_s = await _wait_drained(reader, ledger, before + produced["sent"], 60)
        total_s = time.monotonic() - start
        entries = [n for n, _ in lags]
        ages = [a for _, a in lags]
        sustained = {
            "offered_per_s": args.rate,
            "sent": produced["sent"],
            "sent_per_s": round(produced["sent"] / produced["seconds"]),
            "stored": ledger.stored() - before,
            "stored_per_s_overall": round((ledger.stored() - before) / total_s),
            "lag_entries": {"p50": _percentile(entries, 0.5), "p99": _percentile(entries, 0.99),
                            "max": max(entries, default=0)},
            "lag_ms": {"p50": _percentile(ages, 0.5), "p99": _percentile(ages, 0.99),
                       "max": max(ages, default=0.0)},
            "drained_after_stop_s": round(after_s, 2),
            "producer_late_max_s": round(produced["late_max_s"], 3),
            "cpu_s": {
                "ledger": round(_cpu_s(ledger.process.pid) - cpu["ledger"], 2),
                "postgres": round(_postgres_cpu_s(postmaster) - cpu["postgres"], 2),
                "valkey": round(_cpu_s(valkey_pid) - cpu["valkey"], 2),
            },
        }  # fmt: skip
        print(f"sustained: {sustained}", file=sys.stderr)
    finally:
        ledger.stop()
        await client.aclose()
    return {"drain": drain, "sustained": sustained}


def _markdown(result: dict[str, Any], command: str) -> str:
    d, s = result["drain"], result["sustained"]
    rate = (
        f"{d['events_per_s']:,}" if d["events_per_s"] else "too fast to measure (raise --backlog)"
    )
    return "\n".join([
        f"## Ledger ingest (`{command}`)",
        "",
        "| measure | value |",
        "|---|---|",
        f"| drain: {d['events']:,} waiting events, one worker | **{rate} events/s** "
        f"({d['seconds']} s; CPU s: ledger {d['cpu_s']['ledger']}, PostgreSQL "
        f"{d['cpu_s']['postgres']}, valkey {d['cpu_s']['valkey']}) |",
        f"| sustained: offered {s['offered_per_s']:,}/s for {s['sent']:,} events | achieved "
        f"{s['sent_per_s']:,}/s sent, {s['stored']:,} stored |",
        f"| stream lag, entries (p50 / p99 / max) | {s['lag_entries']['p50']:,} / "
        f"{s['lag_entries']['p99']:,} / {s['lag_entries']['max']:,} |",
        f"| stream lag, age of oldest unstored (p50 / p99 / max) | {s['lag_ms']['p50']:.0f} / "
        f"{s['lag_ms']['p99']:.0f} / {s['lag_ms']['max']:.0f} ms |",
        f"| drained after the producer stopped | {s['drained_after_stop_s']} s |",
    ])  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__)
    parser.add_argument("--customers", type=int, default=100, help="streams (default 100)")
    parser.add_argument("--backlog", type=int, default=200_000, help="drain events (200000)")
    parser.add_argument("--rate", type=int, default=20_000, help="sustained events/s (20000)")
    parser.add_argument("--seconds", type=float, default=20.0, help="sustained duration (20)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    command = "python -m bench.ingest " + " ".join(argv if argv is not None else sys.argv[1:])
    with EmbeddedRedis() as redis, EmbeddedPostgres() as pg:
        result = asyncio.run(_run(args, redis.url, pg))
    result["command"] = command.strip()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"ingest-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    path.write_text(json.dumps(result, indent=2))
    print(_markdown(result, command.strip()))
    print(f"results: {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
