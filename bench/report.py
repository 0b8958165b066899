"""Results: one JSON file per run, a markdown summary, PNG plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

__all__ = ["markdown", "plot", "write"]

COMPARED = (
    "check", "reserve", "reserve-commit", "check-grpc", "reserve-commit-grpc", "durable-commit",
)  # fmt: skip
PER_CALL = ("reserve-commit", "reserve-commit-grpc", "durable-commit")
"""Scenarios whose unit is a model call (reserve then commit), compared at p95."""


def _ms(us: float) -> str:
    return f"{us / 1000:.2f} ms"


def _rows(result: dict[str, Any]) -> list[list[str]]:
    name = result["scenario"]
    if name == "engine":
        d = result["decision"]
        return [
            [
                name,
                "decision + pricing p50 / p99",
                f"{d['p50_ns'] / 1000:.1f} / {d['p99_ns'] / 1000:.1f} µs",
                "-",
                "-",
            ]
        ]
    if name in COMPARED:
        half = result["half_rate"]
        pct = "p95" if name in PER_CALL else "p99"
        unit = "calls/s (reserve+commit)" if name in PER_CALL else "req/s"
        rows = [
            [
                name,
                f"saturation, {unit}",
                f"{result['sidecar']['saturation_rate']:.0f}",
                f"{result['baseline']['saturation_rate']:.0f}",
                f"{result['ratios']['saturation']:.2f}",
            ],
            [
                name,
                f"{pct} at {half['rate']:.0f}/s",
                _ms(half["sidecar"]["total"][f"{pct}_us"]),
                _ms(half["baseline"]["total"][f"{pct}_us"]),
                f"{result['ratios'][f'{pct}_at_half']:.2f}",
            ],
        ]
        busiest = max(r.get("generator_cpu_share", 0.0) for r in result["sidecar"]["runs"])
        rows.append(
            [
                name,
                "load generator's CPU share, busiest sweep step (1.0: it was the limit)",
                f"{busiest:.2f}",
                "-",
                "-",
            ]
        )
        for step, s in half["sidecar"]["steps"].items():
            rows.append(
                [
                    name,
                    f"{step} p50 / p95 / p99 at {half['rate']:.0f}/s",
                    f"{_ms(s['p50_us'])} / {_ms(s['p95_us'])} / {_ms(s['p99_us'])}",
                    "-",
                    "-",
                ]
            )
        return rows
    if name == "contention":
        return [
            [
                name,
                f"{r['callers']} callers at {r['offered_rate']:.0f}/s",
                f"admitted {r['admitted']}, denied {r['denied']}, settled {r['settled']}, "
                f"held {r['held']}, cap {r['cap']}, overspend {r['overspend']}",
                "-",
                "-",
            ]
            for r in result["runs"]
        ]
    if name == "cold-burst":
        return [
            [
                name,
                f"{result['callers']} reserves at once, 1 s after start",
                f"admitted {result['admitted']}, denied {result['denied']}, "
                f"p99 {_ms(result['p99_us'])}",
                "-",
                "-",
            ]
        ]
    if name == "slow-redis":
        return [
            [
                name,
                f"+{result['added_latency_ms']} ms to Redis, deadline {result['deadline_ms']} ms",
                f"p99 {result['p99_ms']:.1f} ms; denied {result['denied']}; "
                f"held 1 s after: {result['held_after_1_s']} ({result['allowed']} allowed)",
                "-",
                "-",
            ]
        ]
    if name == "many-customers":
        return [
            [
                name,
                f"{result['customers']} customers: hit ratio (Zipf 1.1, cold)",
                f"{result['hit_ratio']:.3f}",
                "-",
                "-",
            ],
            [
                name,
                f"RSS, {result['cached_entries']} cached",
                f"{result['rss_full_bytes'] / 2**20:.0f} MB "
                f"({result['bytes_per_cached_customer']:.0f} B per customer; "
                f"{result['rss_empty_bytes'] / 2**20:.0f} MB empty)",
                "-",
                "-",
            ],
        ]
    return []


def markdown(results: list[dict[str, Any]], command: str) -> str:
    lines = [
        f"Command: `{command}`",
        "",
        "| scenario | measure | sidecar | baseline | ratio |",
        "|---|---|---|---|---|",
    ]
    for result in results:
        lines += ["| " + " | ".join(row) + " |" for row in _rows(result)]
    lines += ["", "| scenario | target | met |", "|---|---|---|"]
    for result in results:
        for target, met in result.get("targets", {}).items():
            lines.append(f"| {result['scenario']} | {target} | {'yes' if met else 'NO'} |")
    return "\n".join(lines) + "\n"


def _grid(count: int) -> tuple[Any, list[Any]]:
    columns = min(count, 2)
    rows = (count + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(6.5 * columns, 4.5 * rows), squeeze=False)
    return figure, [axis for row in axes for axis in row]


def plot(results: list[dict[str, Any]], folder: Path) -> list[Path]:
    written = []
    compared = [r for r in results if r["scenario"] in COMPARED]
    if compared:
        figure, axes = _grid(len(compared))
        for axis, result in zip(axes, compared, strict=False):
            half = result["half_rate"]
            for label, run in (("sidecar", half["sidecar"]), ("baseline", half["baseline"])):
                spectrum = run["total"]["spectrum"]
                xs = [1 / (1 - p / 100) if p < 100 else 1e5 for p, _ in spectrum]
                axis.plot(xs, [v / 1000 for _, v in spectrum], marker="o", label=label)
            axis.set_xscale("log")
            axis.set_xticks([1, 2, 10, 100, 1000, 10000])
            axis.set_xticklabels(["p0", "p50", "p90", "p99", "p99.9", "p99.99"])
            axis.set_ylabel("latency, ms")
            axis.set_title(f"{result['scenario']} at {half['rate']:.0f}/s")
            axis.legend()
        path = folder / "spectrum.png"
        figure.tight_layout()
        figure.savefig(path, dpi=100)
        plt.close(figure)
        written.append(path)
        figure, axes = _grid(len(compared))
        for axis, result in zip(axes, compared, strict=False):
            for label in ("sidecar", "baseline"):
                runs = result[label]["runs"]
                rates = [r["offered_rate"] for r in runs]
                axis.plot(
                    rates,
                    [r["total"]["p50_us"] / 1000 for r in runs],
                    marker="o",
                    label=f"{label} p50",
                )
                axis.plot(
                    rates,
                    [r["total"]["p99_us"] / 1000 for r in runs],
                    marker="x",
                    linestyle="--",
                    label=f"{label} p99",
                )
            axis.set_yscale("log")
            axis.set_xlabel("offered rate, /s")
            axis.set_ylabel("latency, ms")
            axis.set_title(f"{result['scenario']}: latency vs offered rate")
            axis.legend()
        path = folder / "latency-vs-rate.png"
        figure.tight_layout()
        figure.savefig(path, dpi=100)
        plt.close(figure)
        written.append(path)
    return written


def write(results: list[dict[str, Any]], folder: Path, command: str, stamp: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"run-{stamp}.json"
    path.write_text(json.dumps({"command": command, "results": results}, indent=1))
    (folder / "summary.md").write_text(markdown(results, command))
    plot(results, folder)
    return path
