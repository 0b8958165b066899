"""The harness's smoke mode in CI: every scenario runs, with no errors and zero overspend.

It checks correctness only, never speed: this machine is shared and noisy.
"""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.redis


def test_every_scenario_runs_clean_in_smoke_mode(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = tmp_path.glob("run-*.json")
    results = {r["scenario"]: r for r in json.loads(run.read_text())["results"]}
    assert set(results) == {
        "engine",
        "check",
        "reserve",
        "reserve-commit",
        "check-grpc",
        "reserve-commit-grpc",
        "contention",
        "cold-burst",
        "slow-redis",
        "many-customers",
        "durable-commit",
    }
    for result in results.values():
        assert result.get("errors", 0) == 0, result["scenario"]
    for race in results["contention"]["runs"]:
        assert Decimal(race["overspend"]) == 0
        assert race["admitted"] == 100
        assert Decimal(race["settled"]) + Decimal(race["held"]) <= Decimal(race["cap"])
    burst = results["cold-burst"]
    assert (burst["admitted"], burst["denied"].get("store_unavailable", 0)) == (100, 0)
    assert results["slow-redis"]["targets"]["no hidden hold"]
    compared = ("check", "reserve", "reserve-commit", "check-grpc", "reserve-commit-grpc")
    for name in (*compared, "durable-commit"):
        assert results[name]["half_rate"]["sidecar"]["denials"] == {}, name
        assert results[name]["half_rate"]["sidecar"]["measured"] > 0, name
    assert results["many-customers"]["cached_entries"] == results["many-customers"]["customers"]
    assert (tmp_path / "summary.md").exists()
    assert (tmp_path / "spectrum.png").stat().st_size > 0
