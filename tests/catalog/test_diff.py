"""``creditgate policy diff``: changes are semantic (the compiled catalogs compared, not the
text), named by the file's own paths, old -> new."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import yaml

from sidecar.catalog import parse_catalog
from sidecar.catalog.diff import Change, diff
from tests.conftest import EXAMPLE

ROOT = Path(__file__).resolve().parents[2]


def _example() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    return data


def _changes(edit: dict[str, Any]) -> list[Change]:
    return diff(parse_catalog(EXAMPLE.read_text()), parse_catalog(yaml.safe_dump(edit)))


def test_the_same_catalog_written_differently_changes_nothing() -> None:
    data = _example()
    data["models"]["gpt-4o"]["prices_per_million"]["input_tokens"] = "2.5000"  # was "2.50"
    data["plans"] = dict(reversed(list(data["plans"].items())))
    data["plans"]["pro"]["models"] = list(reversed(data["plans"]["pro"]["models"]))
    assert _changes(data) == []


def test_each_kind_of_change_is_named_by_its_path_old_to_new() -> None:
    data = _example()
    data["models"]["gpt-4o"]["prices_per_million"]["output_tokens"] = "12.00"
    data["models"]["gpt-4o"]["costs_per_million"]["output_tokens"] = "9.00"
    data["models"]["mistral-small"] = {"prices_per_million": {"input_tokens": "0.2"}}
    data["plans"]["pro"]["features"]["chat"]["limit"] = 1000
    data["plans"]["pro"]["grants"][0]["amount"] = "30"
    data["plans"]["team"] = {**data["plans"]["free"]}
    del data["plans"]["enterprise"]
    data["contracts"] = {}
    changes = _changes(data)
    lines = [c.line() for c in changes]
    assert "~ models.gpt-4o.prices_per_million.output_tokens: 10.000000000 -> 12.000000000" in lines
    assert "~ models.gpt-4o.costs_per_million.output_tokens: 8.000000000 -> 9.000000000" in lines
    assert "+ models.mistral-small" in lines
    assert "~ plans.pro.features.chat.limit: 20000000 -> 1000" in lines
    assert "+ plans.team" in lines
    assert "- plans.enterprise" in lines
    assert "- contracts.umbrella" in lines
    [grant] = [c for c in changes if c.path == "plans.pro.grants"]
    assert (grant.old or "").startswith("20.000000000 included")
    assert (grant.new or "").startswith("30.000000000 included")
    assert len(changes) == 9, lines  # nothing else moved


def test_the_cli_prints_lines_and_json(tmp_path: Path) -> None:
    data = _example()
    data["models"]["gpt-4o"]["prices_per_million"]["input_tokens"] = "3.00"
    new = tmp_path / "new.yaml"
    new.write_text(yaml.safe_dump(data))
    command = [sys.executable, "-m", "sidecar.cli", "policy", "diff", str(EXAMPLE), str(new)]
    text = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "~ models.gpt-4o.prices_per_million.input_tokens: 2.500000000 -> 3.000000000" in text
    out = subprocess.run(
        [*command, "--json"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    body = msgspec.json.decode(out)
    assert body["changes"] == [
        {"path": "models.gpt-4o.prices_per_million.input_tokens", "change": "changed",
         "old": "2.500000000", "new": "3.000000000"}
    ]  # fmt: skip
    bad = subprocess.run(
        [sys.executable, "-m", "sidecar.cli", "policy", "diff", str(EXAMPLE), str(tmp_path / "no")],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert bad.returncode == 2
    assert str(tmp_path / "no") in bad.stderr
