"""python -m bench.simulate: how long ``creditgate policy simulate`` takes on a big window.

Starts an embedded PostgreSQL 18 (pinned to CPU 1), writes ``--events`` calls of
``--customers`` customers on the example catalog's ``pro`` plan into the ledger's tables (their
charges priced exactly as a commit prices them), then, pinned to CPU 0, simulates the window
twice: under the catalog in force (the report must reproduce every recorded charge, and
this is checked) and under a proposal that doubles gpt-4o's prices and cuts the chat limit.
Reported: seconds and calls per second of each, written to
``bench/results/simulate-<time>.json``. The target (issue #19): 1,000,000 calls in under a
minute.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import yaml

from sidecar.catalog import load_catalog, parse_catalog
from sidecar.engine.customer import CustomerSnapshot
from sidecar.engine.settle import serve_femtos
from sidecar.engine.usage import Usage, price_usage
from sidecar.ledger.db import open_pool, record_catalog
from sidecar.ledger.embedded_pg import EmbeddedPostgres
from sidecar.ledger.simulate import simulate
from sidecar.money import FEMTOS_PER_NANO
from sidecar.times import time_of

ROOT = Path(__file__).resolve().parent.parent
CATALOG = ROOT / "policies" / "example.yaml"
START_MS = 1_793_491_200_000  # 2026-11-01T00:00:00Z
MONTH_MS = 30 * 86_400_000
MODELS = ("gpt-4o-mini", "gpt-4o", "llama-3.1-8b")
COLUMNS = (
    "event_id", "customer", "team", "user_id", "agent", "session", "feature", "model", "units",
    "cost_nanos", "overrun_nanos", "uncovered_nanos", "burned", "carry_femtos",
    "catalog_version", "request_id", "tags", "reserved_at", "ts", "stream_ms", "stream_seq",
    "decided_by", "estimated", "serve_femtos",
)  # fmt: skip


def _rows(events: int, customers: int) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    catalog = load_catalog(CATALOG)
    rng = random.Random(19)
    step = MONTH_MS // events
    calls = []
    for i in range(events):
        customer = f"c{rng.randrange(customers):05d}"
        model = rng.choice(MODELS)
        units = {"input_tokens": rng.randint(100, 8000), "output_tokens": rng.randint(0, 2000)}
        if model == "llama-3.1-8b":
            units["requests"] = 1
        snapshot = CustomerSnapshot(id=customer, plan="pro")
        femtos = price_usage(catalog, snapshot, model, Usage(units=units, amount_nanos=None))
        assert femtos % FEMTOS_PER_NANO == 0, "whole nano prices: no carry to track here"
        ts = time_of(START_MS + i * step)
        calls.append((
            f"r_{i:09d}", customer, "eng", None, None, None, "chat", model,
            msgspec.json.encode(units).decode(), femtos // FEMTOS_PER_NANO, 0, 0, "[]", 0,
            catalog.version, f"q{i}", "{}", ts, ts, START_MS + i * step, 0, "store", False,
            serve_femtos(catalog, model, units),
        ))  # fmt: skip
    changes = [
        (f"c:{n}", f"c{n:05d}", "pro", "", time_of(START_MS - 1), START_MS - 1, n)
        for n in range(customers)
    ]
    return calls, changes


def _proposal() -> Any:
    data = yaml.safe_load(CATALOG.read_text())
    data["models"]["gpt-4o"]["prices_per_million"] = {
        "input_tokens": "5.00", "cached_input_tokens": "2.50", "output_tokens": "20.00"
    }  # fmt: skip
    data["plans"]["pro"]["features"]["chat"]["limit"] = 2_000_000
    return parse_catalog(yaml.safe_dump(data))


async def _run(args: argparse.Namespace, pg: EmbeddedPostgres) -> dict[str, Any]:
    pool = await open_pool(pg.url, max_size=2)
    catalog = load_catalog(CATALOG)
    calls, changes = _rows(args.events, args.customers)
    async with pool.acquire() as db:
        await record_catalog(db, catalog)
        await db.copy_records_to_table(
            "customer_changes",
            records=changes,
            columns=("event_id", "customer", "plan", "overrides", "ts", "stream_ms", "stream_seq"),
        )
        await db.copy_records_to_table("usage_events", records=calls, columns=COLUMNS)
        await db.execute("ANALYZE")
    os.sched_setaffinity(0, {0})  # the simulation on CPU 0, PostgreSQL on CPU 1
    out: dict[str, Any] = {"events": args.events, "customers": args.customers}
    for name, proposal in (("unchanged", catalog), ("proposal", _proposal())):
        async with pool.acquire() as db:
            started = time.perf_counter()
            report = await simulate(db, proposal, START_MS, START_MS + MONTH_MS)
            seconds = time.perf_counter() - started
        if name == "unchanged":
            assert report.totals.revenue_after == report.totals.revenue_before, report.totals
            assert report.totals.denied == 0
        assert report.totals.events == args.events
        out[name] = {
            "seconds": round(seconds, 2),
            "calls_per_second": round(args.events / seconds),
            "denied": report.totals.denied,
            "revenue_before": report.totals.revenue_before,
            "revenue_after": report.totals.revenue_after,
        }
        print(f"{name}: {args.events} calls in {seconds:.1f} s", file=sys.stderr)
    await pool.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.simulate")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    os.sched_setaffinity(0, {1})  # PostgreSQL inherits CPU 1
    with EmbeddedPostgres() as pg:
        result = asyncio.run(_run(args, pg))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"simulate-{stamp}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"results: {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
