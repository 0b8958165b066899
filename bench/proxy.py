"""python -m bench.proxy [--smoke]: what the proxy adds to a streamed model call.

The demo provider (sidecar/proxy/demo.py) streams 200 chunks per call; the same calls go to
it directly (the baseline) and through the sidecar's proxy (reserve, relay with a hold that
grows, commit), in the same run. Open loop: call *i* starts at ``start + i / rate`` and its
latencies count from then. Reported for each: time to the first chunk and to the whole
response (p50, p99) at half the baseline's saturation, and saturation (the highest rate whose
p99 of the whole response stays under 1 s with 95% achieved and no errors: rates double until
one fails, then are bisected four times). The sidecar is
pinned to CPU 0; the provider, valkey and this load generator to CPU 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from bench.stats import new_histogram
from bench.targets import ADMIN_TOKEN, Process, pin, pin_harness, start_sidecar
from sidecar.embedded import EmbeddedRedis, free_port

__all__ = ["main"]

CHUNKS = 200
WHOLE_P99_BOUND_US = 1_000_000
REFINE = 4
BODY = {
    "model": "gpt-4o-mini", "stream": True,
    "messages": [{"role": "user", "content": "Tell me about metering."}],
}  # fmt: skip


async def _call(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], due: float
) -> tuple[float, float]:
    """One streamed call started at loop time ``due``: (first chunk, whole) in seconds."""
    loop = asyncio.get_running_loop()
    async with session.post(url, json=BODY, headers=headers) as answer:
        if answer.status != 200:
            raise RuntimeError(f"{url}: {answer.status} {await answer.text()}")
        first = None
        async for _ in answer.content.iter_any():
            if first is None:
                first = loop.time() - due
    assert first is not None
    return first, loop.time() - due


async def _run(url: str, headers: dict[str, str], rate: float, duration_s: float) -> dict:
    first, whole = new_histogram(), new_histogram()
    errors = 0
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        loop = asyncio.get_running_loop()
        start, count = loop.time() + 0.1, int(rate * duration_s)
        tasks = []
        for i in range(count):
            due = start + i / rate
            await asyncio.sleep(max(0.0, due - loop.time()))
            tasks.append(asyncio.create_task(_call(session, url, headers, due)))
        ended = loop.time()
        for result in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(result, BaseException):
                errors += 1
                continue
            first.record_value(max(1, int(result[0] * 1e6)))
            whole.record_value(max(1, int(result[1] * 1e6)))
        elapsed = max(ended - start, 1e-9)
    return {
        "rate": rate, "achieved": count / elapsed if count else 0.0, "errors": errors,
        "first_p50_us": first.get_value_at_percentile(50),
        "first_p99_us": first.get_value_at_percentile(99),
        "whole_p50_us": whole.get_value_at_percentile(50),
        "whole_p99_us": whole.get_value_at_percentile(99),
    }  # fmt: skip


def _holds(run: dict) -> bool:
    return (
        not run["errors"] and run["achieved"] >= 0.95 * run["rate"]
        and run["whole_p99_us"] <= WHOLE_P99_BOUND_US
    )  # fmt: skip


async def _sweep(url: str, headers: dict[str, str], rates: list[float], duration_s: float) -> dict:
    """Doubling rates until one fails, then bisecting between the last that held and it
    (``REFINE`` times), so that saturation is known within a few percent, not a factor 2."""
    runs = []
    for rate in rates:
        runs.append(await _run(url, headers, rate, duration_s))
        if not _holds(runs[-1]):
            break
    good = max((r["rate"] for r in runs if _holds(r)), default=0.0)
    if good and not _holds(runs[-1]):
        bad = runs[-1]["rate"]
        for _ in range(REFINE):
            rate = round((good + bad) / 2)
            runs.append(await _run(url, headers, rate, duration_s))
            good, bad = (rate, bad) if _holds(runs[-1]) else (good, rate)
    return {"saturation": good, "runs": runs}


def _post(url: str, body: Any, token: str = ADMIN_TOKEN, method: str = "POST") -> Any:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.proxy", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="a second at a low rate")
    args = parser.parse_args(argv)
    rates = [5.0] if args.smoke else [10.0 * 2**k for k in range(8)]
    duration_s = 1.0 if args.smoke else 5.0
    pin_harness()
    folder = Path(tempfile.mkdtemp(prefix="creditgate-bench-proxy-"))
    port = free_port()
    upstream = Process(
        [sys.executable, "-m", "sidecar.proxy.demo", "--port", str(port), "--words", str(CHUNKS)],
        port, "/nothing-here",
    )  # fmt: skip
    pin(upstream.pid, 1)  # with the load generator, off the sidecar's core
    base = f"http://127.0.0.1:{port}/v1"
    spec = {"upstreams": {"demo": {"base_url": base, "models": ["gpt-4o-mini"]}}}
    (folder / "upstreams.yaml").write_text(yaml.safe_dump(spec))
    proxy_port = free_port()
    try:
        with EmbeddedRedis() as redis:
            sidecar = start_sidecar(redis.url, patient=args.smoke, extra={
                "--proxy-upstreams": str(folder / "upstreams.yaml"),
                "--proxy-port": str(proxy_port),
            })  # fmt: skip
            try:
                admin = f"{sidecar.admin_url}/admin/v1/customers/bench-1"
                _post(admin, {"plan": "bench"}, method="PUT")
                grant = {"credit_type": "paid", "amount": "1000000", "idempotency_key": "g"}
                _post(f"{admin}/grants", grant)
                key = _post(f"{admin}/proxy-keys", {"idempotency_key": "bench"})["secret"]
                bare = asyncio.run(_sweep(f"{base}/chat/completions", {}, rates, duration_s))
                proxied_url = f"http://127.0.0.1:{proxy_port}/v1/chat/completions"
                auth = {"Authorization": f"Bearer {key}"}
                through = asyncio.run(_sweep(proxied_url, auth, rates, duration_s))
                half = max(rates[0], bare["saturation"] / 2)
                bare_half = asyncio.run(_run(f"{base}/chat/completions", {}, half, duration_s))
                proxy_half = asyncio.run(_run(proxied_url, auth, half, duration_s))
            finally:
                sidecar.stop()
    finally:
        upstream.stop()
    result = {
        "scenario": "proxy", "chunks": CHUNKS, "half_rate": half,
        "baseline": {"sweep": bare, "half": bare_half},
        "proxy": {"sweep": through, "half": proxy_half},
        "saturation_ratio": through["saturation"] / max(bare["saturation"], 1e-9),
    }  # fmt: skip
    if not args.smoke:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        out = Path(__file__).parent / "results" / f"proxy-{stamp}.json"
        out.write_text(json.dumps(result, indent=1))
    ms = 1000.0
    print(f"proxy, {CHUNKS}-chunk streams, at {half:g}/s (half the baseline's saturation):")
    for what, label in (("first", "first chunk"), ("whole", "whole response")):
        for p in ("p50", "p99"):
            b, s = bare_half[f"{what}_{p}_us"] / ms, proxy_half[f"{what}_{p}_us"] / ms
            print(f"  {label} {p}: direct {b:.2f} ms, proxied {s:.2f} ms, added {s - b:.2f} ms")
    print(
        f"  saturation: direct {bare['saturation']:g}/s, proxied {through['saturation']:g}/s "
        f"({result['saturation_ratio']:.2f})"
    )
    # Every rate both sweeps ran, for what the half-rate run alone cannot show: how the
    # added latency grows with load on this shared machine.
    proxied_at = {run["rate"]: run for run in through["runs"]}
    print("  sweep, first chunk and whole response p50, direct vs proxied:")
    for run in sorted(bare["runs"], key=lambda r: r["rate"]):
        if (other := proxied_at.get(run["rate"])) is not None:
            print(
                f"    {run['rate']:g}/s: first {run['first_p50_us'] / ms:.2f} vs "
                f"{other['first_p50_us'] / ms:.2f} ms, whole {run['whole_p50_us'] / ms:.2f} vs "
                f"{other['whole_p50_us'] / ms:.2f} ms"
            )
    print(f"  errors: direct {bare_half['errors']}, proxied {proxy_half['errors']}")
    return 1 if bare_half["errors"] or proxy_half["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
