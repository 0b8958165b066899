"""Catalog loading: every rejection names file, path and fix; the version is a content hash."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sidecar.catalog import load_catalog, parse_catalog
from sidecar.cli import main
from sidecar.errors import CatalogError

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
BAD = HERE / "bad"
EXAMPLE = ROOT / "policies" / "example.yaml"
MINIMAL = HERE / "good" / "minimal.yaml"

# (fixture, dotted path inside the file, part of the problem)
REJECTED = [
    ("unknown_key.yaml", "plans.pro.features.chat.limt", "unknown field 'limt'"),
    ("unknown_top_level_key.yaml", "currency", "unknown field 'currency'"),
    ("dangling_plan_feature.yaml", "plans.pro.features.chats", "unknown feature 'chats'"),
    ("dangling_plan_model.yaml", "plans.pro.models[1]", "unknown model 'gpt-5'"),
    (
        "dangling_grant_credit_type.yaml",
        "plans.pro.grants[0].credit_type",
        "unknown credit type 'included'",
    ),
    (
        "dangling_credit_type_model.yaml",
        "credit_types.frontier.models[1]",
        "unknown model 'claude-opus'",
    ),
    ("dangling_counts_kind.yaml", "features.chat.counts[1]", "unknown unit kind"),
    (
        "negative_price.yaml",
        "models.gpt-4o.prices_per_million.input_tokens",
        "negative price",
    ),
    ("negative_limit.yaml", "plans.pro.features.chat.limit", "negative value -1"),
    ("negative_grant_amount.yaml", "plans.pro.grants[0].amount", "negative amount"),
    # Duplicate keys are refused while the YAML is read, before any path exists: a line.
    ("duplicate_id.yaml", "models.gpt-4o", "declared twice (line 7)"),
    ("duplicate_plan_model.yaml", "plans.pro.models[1]", "duplicate 'gpt-4o'"),
    (
        "price_too_fine_per_million.yaml",
        "models.gpt-4o.prices_per_million.input_tokens",
        "10 fractional digits",
    ),
    ("price_too_fine_per_unit.yaml", "models.gpt-4o.prices.requests", "16 fractional digits"),
    (
        "config_without_value.yaml",
        "plans.pro.features.max_context_tokens.value",
        "config feature has no value",
    ),
    ("limit_on_boolean.yaml", "plans.pro.features.sso.limit", "sso is boolean"),
    ("overage_without_cap.yaml", "plans.pro.on_credits_exhausted.cap", "overage has no cap"),
    ("wrong_type.yaml", "plans.pro.features.chat.limit", "got `str`"),
    ("missing_section.yaml", "models", "missing required field"),
    ("invalid_id.yaml", "models.gpt 4o", "invalid id 'gpt 4o'"),
    ("invalid_id_separator.yaml", "credit_types.paid|eu", "invalid id 'paid|eu'"),
    ("yaml_syntax_error.yaml", "line 7", "expected ',' or '}'"),
    (
        "unknown_unit_kind.yaml",
        "models.gpt-4o.prices_per_million.image_tokens",
        "unknown unit kind 'image_tokens'",
    ),
    ("priority_too_large.yaml", "credit_types.paid.priority", "above 999999"),
    ("allow_without_overdraft.yaml", "features.chat.overdraft", "allow has no overdraft"),
    ("alert_percent_out_of_range.yaml", "plans.pro.alerts.budgets[1]", "from 1% to 1000%"),
    ("alert_balance_percent.yaml", "plans.pro.alerts.balance[0]", "credits left"),
    ("alert_duplicate.yaml", "plans.pro.alerts.budgets", "names a threshold twice"),
    ("negative_fee.yaml", "plans.pro.fee", "negative amount"),
    (
        "volume_above_list.yaml",
        "models.gpt-4o.volume.input_tokens[0].price_per_million",
        "above the list price",
    ),
    ("volume_without_rebate_type.yaml", "rebate_credit_type", "no credit type to rebate in"),
    ("rollover_too_long.yaml", "plans.pro.grants[0].rollover.expires_after_months", "36 months"),
    ("tiers_last_with_end.yaml", "models.gpt-4o.tiers.input_tokens[1].up_to", "has an end"),
    ("tiers_not_growing.yaml", "models.gpt-4o.tiers.input_tokens[1].up_to", "1000 units"),
    ("tiers_two_prices.yaml", "models.gpt-4o.tiers.input_tokens[0]", "needs one price"),
    ("tiers_and_price.yaml", "models.gpt-4o.tiers.input_tokens", "has a price and tiers"),
    ("tiers_empty.yaml", "models.gpt-4o.tiers.input_tokens", "no tiers"),
    ("alert_margin_not_percent.yaml", "plans.pro.alerts.margin", "not a percent from 0% to 100%"),
    ("costs_negative.yaml", "models.gpt-4o.costs_per_million.input_tokens", "negative"),
    ("costs_twice.yaml", "models.gpt-4o.costs.input_tokens", "both per unit and per million"),
    (
        "costs_unknown_kind.yaml",
        "models.gpt-4o.costs_per_million.image_tokens",
        "unknown unit kind 'image_tokens'",
    ),
    (
        "tiers_negative_price.yaml",
        "models.gpt-4o.tiers.input_tokens[0].price_per_million",
        "negative price",
    ),
    ("discount_over_100.yaml", "contracts.acme.discount_percent", "150 is not a percent"),
    ("zero_minimum.yaml", "contracts.acme.minimum", "amount is zero"),
    (
        "overdraft_on_deny.yaml",
        "features.chat.overdraft_per_call",
        "applies to on_store_unavailable: allow",
    ),
]


def test_every_bad_fixture_has_a_row() -> None:
    assert sorted(path.name for path in BAD.glob("*.yaml")) == sorted(row[0] for row in REJECTED)


@pytest.mark.parametrize(("name", "path", "problem"), REJECTED, ids=[r[0] for r in REJECTED])
def test_bad_catalog_names_file_path_and_fix(name: str, path: str, problem: str) -> None:
    with pytest.raises(CatalogError) as caught:
        load_catalog(BAD / name)
    error = caught.value
    assert error.file.endswith(name)
    assert error.path == path
    assert problem in error.problem
    assert error.fix
    message = str(error)
    assert error.file in message
    assert path in message
    assert "fix:" in message


def test_good_minimal_catalog_loads() -> None:
    catalog = load_catalog(MINIMAL)
    assert set(catalog.plans) == {"pro"}
    # 2.50 credits per million tokens is 2.5e-6 credits, 2.5e9 femto-credits, per token.
    assert catalog.prices_femtos["gpt-4o"] == {
        "input_tokens": 2_500_000_000,
        "output_tokens": 10_000_000_000,
    }
    assert catalog.plans["pro"].grants[0].amount_nanos == 20 * 10**9


def test_example_catalog_loads() -> None:
    catalog = load_catalog(EXAMPLE)
    assert set(catalog.plans) == {"free", "pro", "enterprise"}
    assert len(catalog.prices_femtos) >= 4
    kinds = {feature.type for feature in catalog.features.values()}
    assert kinds == {"boolean", "config", "metered"}
    assert catalog.credit_types["frontier"].models == frozenset({"gpt-4o", "claude-sonnet-4"})
    assert catalog.plans["enterprise"].overage_cap_nanos == 2000 * 10**9
    assert catalog.contracts["globex"].limits == {"support_agent": 5000}


def test_unreadable_file_is_a_catalog_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(CatalogError) as caught:
        load_catalog(missing)
    assert caught.value.file == str(missing)
    assert caught.value.path == "(file)"


def test_version_ignores_comments_layout_and_key_order() -> None:
    text = MINIMAL.read_text()
    relaid = """
# the same catalog, written differently
plans:
  pro:
    grants: [{amount: "20", credit_type: paid}]   # key order swapped
    models:
      - gpt-4o
    features: {chat: {limit: 1000000}}
features:
  chat:
    counts: [input_tokens, output_tokens]
    unit: tokens
    type: metered
models: {gpt-4o: {prices_per_million: {output_tokens: "10.00", input_tokens: "2.50"}}}
credit_types: {paid: {priority: 10}}
"""
    original = parse_catalog(text)
    assert parse_catalog(relaid).version == original.version
    assert len(original.version) == 12
    assert int(original.version, 16) >= 0


def test_version_changes_with_a_price() -> None:
    text = MINIMAL.read_text()
    changed = text.replace('output_tokens: "10.00"', 'output_tokens: "10.01"')
    assert changed != text
    assert parse_catalog(changed).version != parse_catalog(text).version


@pytest.fixture
def root_logging() -> Iterator[None]:
    """The CLI sends the root logger to this test's captured stderr, which closes when the
    test ends: later tests must log where they did before."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("root_logging")
def test_cli_validate_ok(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "validate", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ok")
    assert str(EXAMPLE) in out
    assert load_catalog(EXAMPLE).version in out


@pytest.mark.usefixtures("root_logging")
def test_cli_validate_bad(capsys: pytest.CaptureFixture[str]) -> None:
    bad = BAD / "dangling_plan_model.yaml"
    assert main(["policy", "validate", str(EXAMPLE), str(bad)]) == 1
    captured = capsys.readouterr()
    assert captured.out.startswith("ok")  # the good file is still reported
    assert str(bad) in captured.err
    assert "plans.pro.models[1]" in captured.err
    assert "fix:" in captured.err


def test_cli_validate_as_a_process() -> None:
    bad = BAD / "unknown_key.yaml"
    command = [sys.executable, "-m", "sidecar.cli", "policy", "validate"]
    good = subprocess.run(
        [*command, str(EXAMPLE)], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert good.returncode == 0, good.stderr
    assert "ok" in good.stdout
    failed = subprocess.run(
        [*command, str(bad)], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert failed.returncode == 1
    assert str(bad) in failed.stderr
    assert "plans.pro.features.chat.limt" in failed.stderr
