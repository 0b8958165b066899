"""python -m bench [--smoke] [--out DIR] [SCENARIO ...]: run scenarios, write results.

Starts what it measures (a valkey-server, the sidecar, the baselines) on loopback, runs
each scenario bounded in time and request count, and stops everything. Exits 1 when a
scenario had errors, or in smoke mode when contention overspent.
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from bench.report import markdown, write
from bench.scenarios import SCENARIOS, Bench
from bench.targets import ROOT, pin_harness, start_baseline, start_sidecar
from sidecar.embedded import EmbeddedRedis


def _failures(results: list[dict[str, Any]], smoke: bool) -> list[str]:
    failed = [f"{r['scenario']}: {r['errors']} errors" for r in results if r.get("errors")]
    for result in results:
        if result["scenario"] == "contention" and not all(result["targets"].values()):
            failed.append("contention: overspend or a wrong admitted count")
        if result["scenario"] == "cold-burst" and not all(result["targets"].values()):
            failed.append(f"cold-burst: {result['targets']}")
        if result["scenario"] == "slow-redis" and not result["targets"]["no hidden hold"]:
            failed.append(f"slow-redis: a hidden hold ({result['held_after_1_s']} held)")
        if smoke and result.get("denials"):
            failed.append(f"{result['scenario']}: unexpected denials {result['denials']}")
    return failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "scenarios",
        nargs="*",
        choices=[*SCENARIOS, []],
        metavar="SCENARIO",
        help=f"any of {', '.join(SCENARIOS)} (default: all)",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="seconds per scenario at a low rate; checks correctness only",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    names = args.scenarios or list(SCENARIOS)
    command = "python -m bench " + shlex.join([*(["--smoke"] if args.smoke else []), *names])
    results = []
    pin_harness()
    with EmbeddedRedis() as redis:
        sidecar = start_sidecar(redis.url, patient=args.smoke)
        try:
            baseline = start_baseline(redis.url)
        except BaseException:
            sidecar.stop()
            raise
        try:
            bench = Bench(redis_url=redis.url, sidecar=sidecar, baseline=baseline, smoke=args.smoke)
            asyncio.run(bench.seed(["acme"], grant="1000000000"))
            for name in names:
                started = time.monotonic()
                print(f"{name} ...", file=sys.stderr, flush=True)
                result = SCENARIOS[name](bench)
                result["wall_s"] = time.monotonic() - started
                results.append(result)
        finally:
            sidecar.stop()
            baseline.stop()
    path = write(results, args.out, command, time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
    print(markdown(results, command))
    print(f"results: {path}", file=sys.stderr)
    failed = _failures(results, args.smoke)
    for failure in failed:
        print(f"FAILED {failure}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
