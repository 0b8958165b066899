"""python -m bench.ledger_scale: what the live state and the ledger cost as customers and calls
grow (the ``ledger-scale`` scenario).

Starts what it measures on loopback: a valkey-server, a PostgreSQL (embedded, fsync on), the
ledger as deployed (``creditgate ledger serve``, one worker, its own process, pinned to CPU 0;
valkey, PostgreSQL and this process on CPU 1 where the machine has two), and for the last
measure a three-primary valkey cluster. Reported, with the figures the issue sets as targets:

* **Redis bytes per call**: model calls (reserve + commit, attributed to team and user) after
  a warm-up; growth of ``used_memory`` per call, the event stream apart (the ledger trims it
  once stored), at the default idempotency window.
* **idle**, at 1,000 and then at ``--customers`` customers, once the ledger has stored every
  event: ledger CPU (share of a core) and Redis commands/s over ``--idle-s`` seconds.
* **commit → stored**, one active customer among them: from the commit's answer to its row
  in PostgreSQL, p50 / p99 over ``--commits`` sequential commits.
* **drain**: ``--backlog`` events over all the customers, waiting before the ledger starts.
* **/ledger/v1/status**: p50 / max over 20 calls.
* **cluster**: the Redis time (commandstats, µs per call) of the reserve and commit scripts
  on each primary of the cluster against the single node, for the same calls.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from bench.ingest import CATALOG, ROOT, Ledger, _append, _cpu_s, _percentile, _templates
from bench.targets import HARNESS_CPU, SERVER_CPU, pin
from sidecar.catalog import load_catalog
from sidecar.embedded import EmbeddedCluster, EmbeddedRedis
from sidecar.ledger.embedded_pg import EmbeddedPostgres
from sidecar.service import Service
from sidecar.store.redis_store import RedisStore
from sidecar.wire import CommitRequest, GrantRequest, ReserveRequest, UpsertCustomerRequest


async def _customers(service: Service, first: int, last: int) -> None:
    async def one(i: int) -> None:
        customer = f"c{i:06d}"
        await service.upsert_customer(customer, UpsertCustomerRequest(plan="pro"))
        await service.grant(
            customer, GrantRequest(credit_type="paid", amount="1000", idempotency_key="seed")
        )

    for start in range(first, last, 500):
        await asyncio.gather(*(one(i) for i in range(start, min(last, start + 500))))


async def _call(service: Service, customer: str, key: str) -> str:
    hold = await service.reserve(
        ReserveRequest(
            customer=customer, feature="chat", model="gpt-4o-mini", team="eng",
            user=f"u-{hash(key) % 100}", units={"input_tokens": 1200, "output_tokens": 800},
            idempotency_key=key,
        )
    )  # fmt: skip
    assert hold.allowed, hold
    rid = hold.reservation_id or ""
    await service.commit(
        CommitRequest(reservation_id=rid, units={"input_tokens": 1180, "output_tokens": 312})
    )
    return rid


async def _over_streams(client: aioredis.Redis, measure: str) -> int:
    """The sum of ``measure`` (``memory_usage`` or ``xlen``) over every shard's stream."""
    total = 0
    async for key in client.scan_iter(match="cg:{s:*}:events", count=1000):
        total += await getattr(client, measure)(key) or 0
    return total


async def _bytes_per_call(service: Service, client: aioredis.Redis, calls: int) -> dict[str, Any]:
    customers = [f"c{i:06d}" for i in range(100)]
    for i in range(1000):  # warm-up: every hash and window exists
        await _call(service, customers[i % 100], f"warm-{i:08d}-4b1d-9e21-a0c4f5d6e7b8")
    used, streams = (
        (await client.info("memory"))["used_memory"],
        await _over_streams(client, "memory_usage"),
    )
    for i in range(calls):
        await _call(service, customers[i % 100], f"call-{i:08d}-4b1d-9e21-a0c4f5d6e7b8")
    grown = (await client.info("memory"))["used_memory"] - used
    stream = await _over_streams(client, "memory_usage") - streams
    return {
        "calls": calls,
        "retained_bytes_per_call": round((grown - stream) / calls),
        "stream_bytes_per_call_until_trimmed": round(stream / calls),
    }


async def _wait_stored(ledger: Ledger, timeout_s: float = 900) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        lag = ledger.status()["lag"]
        if lag is not None and lag["undelivered"] + lag["pending"] == 0:
            return
        await asyncio.sleep(0.2)
    raise RuntimeError("the ledger did not store every event")


async def _idle(ledger: Ledger, client: aioredis.Redis, seconds: float) -> dict[str, float]:
    before_cpu = _cpu_s(ledger.process.pid)
    before = (await client.info("stats"))["total_commands_processed"]
    start = time.monotonic()
    await asyncio.sleep(seconds)
    elapsed = time.monotonic() - start
    commands = (await client.info("stats"))["total_commands_processed"] - before - 1
    return {
        "ledger_cpu_share": round((_cpu_s(ledger.process.pid) - before_cpu) / elapsed, 4),
        "redis_commands_per_s": round(commands / elapsed, 1),
    }


async def _commit_to_stored(service: Service, database_url: str, commits: int) -> dict[str, Any]:
    db = await asyncpg.connect(database_url)
    seconds = []
    try:
        for i in range(commits):
            rid = await _call(service, "c000007", f"active-{i}")
            start = time.monotonic()
            while not await db.fetchval("SELECT 1 FROM usage_events WHERE event_id = $1", rid):
                await asyncio.sleep(0.002)
            seconds.append(time.monotonic() - start)
    finally:
        await db.close()
    return {
        "commits": commits,
        "p50_ms": round(_percentile(seconds, 0.5) * 1000, 1),
        "p99_ms": round(_percentile(seconds, 0.99) * 1000, 1),
    }


def _status_ms(ledger: Ledger) -> dict[str, float]:
    times = []
    for _ in range(20):
        start = time.monotonic()
        ledger.status()
        times.append((time.monotonic() - start) * 1000)
    return {"p50_ms": round(_percentile(times, 0.5), 1), "max_ms": round(max(times), 1)}


async def _script_us(url: str, nodes: list[aioredis.Redis], calls: int) -> list[dict[str, float]]:
    """Redis µs per EVALSHA (the reserve and commit scripts) on each of ``nodes``, from
    commandstats, over ``calls`` model calls spread over 300 customers."""
    store = RedisStore(url)
    await store.agree_layout()
    service = Service(store, load_catalog(CATALOG))
    try:
        await _customers(service, 0, 300)
        for node in nodes:
            await node.config_resetstat()
        for i in range(calls):
            await _call(service, f"c{i % 300:06d}", f"node-{i}")
        out = []
        for node in nodes:
            evalsha = (await node.info("commandstats")).get("cmdstat_evalsha", {})
            out.append({"evalsha_calls": evalsha.get("calls", 0),
                        "us_per_call": evalsha.get("usec_per_call", 0.0)})  # fmt: skip
        return out
    finally:
        await store.close()


async def _run(
    args: argparse.Namespace, redis: EmbeddedRedis, pg: EmbeddedPostgres
) -> dict[str, Any]:
    client = aioredis.Redis.from_url(redis.url)
    store = RedisStore(redis.url)
    await store.agree_layout()
    service = Service(store, load_catalog(CATALOG))
    valkey_pid = int((await client.info("server"))["process_id"])
    pin(valkey_pid, HARNESS_CPU)
    assert pg.process is not None
    pin(pg.process.pid, HARNESS_CPU)
    pin(0, HARNESS_CPU)
    result: dict[str, Any] = {}
    ledger: Ledger | None = None
    try:
        await _customers(service, 0, 1000)
        result["memory"] = await _bytes_per_call(service, client, args.calls)
        print(f"memory: {result['memory']}", file=sys.stderr)

        ledger = Ledger(redis.url, pg.url)
        pin(ledger.process.pid, SERVER_CPU)
        await _wait_stored(ledger)
        result["idle_1000"] = await _idle(ledger, client, args.idle_s)
        print(f"idle at 1,000 customers: {result['idle_1000']}", file=sys.stderr)
        ledger.stop()

        await _customers(service, 1000, args.customers)
        templates = await _templates_kept()
        names = [f"c{i:06d}" for i in range(args.customers)]
        for offset in range(0, args.backlog, 5000):
            await _append(client, templates, names, offset, min(5000, args.backlog - offset))
        waiting = await _over_streams(client, "xlen")  # all of them wait
        ledger = Ledger(redis.url, pg.url)
        pin(ledger.process.pid, SERVER_CPU)
        start = time.monotonic()
        await _wait_stored(ledger)
        drain_s = time.monotonic() - start
        result["drain"] = {
            "customers": args.customers,
            "events": waiting,
            "seconds": round(drain_s, 2),
            "events_per_s": round(waiting / drain_s),
        }
        print(f"drain: {result['drain']}", file=sys.stderr)
        result[f"idle_{args.customers}"] = await _idle(ledger, client, args.idle_s)
        print(f"idle at {args.customers:,} customers: {result[f'idle_{args.customers}']}",
              file=sys.stderr)  # fmt: skip
        result["commit_to_stored"] = await _commit_to_stored(service, pg.url, args.commits)
        print(f"commit -> stored: {result['commit_to_stored']}", file=sys.stderr)
        result["status"] = _status_ms(ledger)
        print(f"/status: {result['status']}", file=sys.stderr)
    finally:
        if ledger is not None:
            ledger.stop()
        await store.close()
        await client.aclose()
    return result


async def _templates_kept() -> list[dict[bytes, bytes]]:
    """Debit entries of real commits, without flushing this Redis as bench.ingest does."""
    with EmbeddedRedis() as scratch:
        return await _templates(scratch.url)


async def _cluster(calls: int) -> dict[str, Any]:
    with EmbeddedRedis() as single:
        node = aioredis.Redis.from_url(single.url)
        (alone,) = await _script_us(single.url, [node], calls)
        await node.aclose()
    with EmbeddedCluster(3) as cluster:
        nodes = [aioredis.Redis.from_url(n.url) for n in cluster.nodes]
        each = await _script_us(cluster.url, nodes, calls)
        for node in nodes:
            await node.aclose()
    mean = sum(n["us_per_call"] for n in each) / len(each)
    return {
        "single_node": alone,
        "cluster_nodes": each,
        "us_per_call_ratio_cluster_to_single": round(mean / alone["us_per_call"], 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ledger_scale", description=__doc__)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=20_000, help="calls for bytes per call")
    parser.add_argument("--backlog", type=int, default=200_000, help="drain events")
    parser.add_argument("--commits", type=int, default=200, help="commit -> stored samples")
    parser.add_argument("--idle-s", type=float, default=20.0, help="idle measure, seconds")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    command = "python -m bench.ledger_scale " + " ".join(argv if argv is not None else sys.argv[1:])
    with EmbeddedRedis() as redis, EmbeddedPostgres() as pg:
        result = asyncio.run(_run(args, redis, pg))
    result["cluster"] = asyncio.run(_cluster(args.calls // 4))
    print(f"cluster: {result['cluster']}", file=sys.stderr)
    result["command"] = command.strip()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"ledger-scale-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    path.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    print(f"results: {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
