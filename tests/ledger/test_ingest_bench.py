"""The ingest benchmark's smoke run in CI: correctness only (every event sent is stored), never
speed; speed is measured by ``python -m bench.ingest`` on a quiet machine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.redis, pytest.mark.postgres]


def test_the_ingest_benchmark_runs_and_stores_every_event(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.ingest", "--customers", "10", "--backlog", "3000",
         "--rate", "2000", "--seconds", "1", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = tmp_path.glob("ingest-*.json")
    result = json.loads(run.read_text())
    assert result["drain"]["events"] == 3000
    sustained = result["sustained"]
    assert sustained["sent"] > 0
    assert sustained["stored"] == sustained["sent"]
    assert "events/s" in done.stdout
