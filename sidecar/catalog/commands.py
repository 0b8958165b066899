"""``creditgate policy validate | diff | simulate | propose | approve | rollback``: what a
catalog file is, what it changes, what it would have done to real usage, and putting it in
force through the ledger's pricing API (ledger/proposals.py). Heavy imports wait for the
command that needs them."""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from pathlib import Path
from typing import Any

import msgspec

from sidecar.catalog import load_catalog
from sidecar.catalog.diff import diff
from sidecar.environment import add_environment_flag, environment_of
from sidecar.errors import CatalogError, InvalidInput
from sidecar.settings import SettingsError
from sidecar.times import parse_time

__all__ = ["add_policy_commands"]


def _validate(args: argparse.Namespace) -> int:
    failed = 0
    for file in args.files:
        try:
            catalog = load_catalog(file)
        except CatalogError as error:
            print(f"error: {error}", file=sys.stderr)
            failed += 1
            continue
        print(
            f"ok: {file}: catalog {catalog.name or '(unnamed)'} version {catalog.version}: "
            f"{len(catalog.plans)} plans, {len(catalog.features)} features, "
            f"{len(catalog.prices_femtos)} models"
        )
    return 1 if failed else 0


def _diff(args: argparse.Namespace) -> int:
    """Print what NEW changes from OLD; exit 0 either way (1 only for a bad file)."""
    old, new = load_catalog(args.old), load_catalog(args.new)
    changes = diff(old, new)
    if args.json:
        body = {"old_version": old.version, "new_version": new.version, "changes": changes}
        print(msgspec.json.encode(body).decode())
        return 0
    print(f"catalog {old.version} -> {new.version}: {len(changes)} changes")
    for change in changes:
        print(change.line())
    return 0


def _simulate(args: argparse.Namespace) -> int:
    import asyncio  # noqa: PLC0415

    from sidecar.ledger.db import open_pool  # noqa: PLC0415
    from sidecar.ledger.simulate import simulate, summary  # noqa: PLC0415

    proposal = load_catalog(args.file)
    database_url = args.database_url or os.environ.get("DATABASE_URL")
    if not database_url:
        raise SettingsError("--database-url (or DATABASE_URL) is required: the ledger's")
    try:
        start, end = parse_time("from", args.start), parse_time("to", args.end)
    except InvalidInput as error:
        print(f"error: --{error.field}: {error.message}", file=sys.stderr)
        return 2

    environment = environment_of(args, os.environ)

    async def run() -> Any:
        pool = await open_pool(database_url, max_size=1, environment=environment)
        try:
            async with pool.acquire() as connection:
                return await simulate(connection, proposal, start, end)
        finally:
            await pool.close()

    try:
        report = asyncio.run(run())
    except InvalidInput as error:
        print(f"error: --{error.field}: {error.message}", file=sys.stderr)
        return 2
    print(msgspec.json.encode(report).decode() if args.json else summary(report))
    return 0


def _pricing(args: argparse.Namespace, method: str, path: str, body: Any = None) -> int:
    """One call of the ledger's pricing API; the answer as JSON, exit 1 on an error answer."""
    import asyncio  # noqa: PLC0415

    from sidecar.ledger.pricing_client import PricingClient, PricingError  # noqa: PLC0415

    url = args.ledger_url or os.environ.get("CREDITGATE_LEDGER_URL")
    token = args.token or os.environ.get("CREDITGATE_PRICING_TOKEN")
    if not url or not token:
        raise SettingsError(
            "--ledger-url (or CREDITGATE_LEDGER_URL) and --token (or CREDITGATE_PRICING_TOKEN) "
            "are required: the ledger's query API and your pricing token"
        )
    try:
        answer = asyncio.run(PricingClient(url, token).call(method, path, body))
    except PricingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(msgspec.json.encode(answer).decode())
    return 0


def _propose(args: argparse.Namespace) -> int:
    try:
        text = Path(args.file).read_text(encoding="utf-8")
    except OSError as error:
        raise SettingsError(f"{args.file}: cannot read it: {error.strerror}") from None
    body = {"catalog": text, "rationale": args.rationale,
            "idempotency_key": args.idempotency_key or hashlib.sha256(text.encode()).hexdigest(),
            "from": args.start, "to": args.end}  # fmt: skip
    return _pricing(args, "POST", "/proposals", {k: v for k, v in body.items() if v})


def _approve(args: argparse.Namespace) -> int:
    return _pricing(args, "POST", f"/proposals/{args.id}/approve")


def _rollback(args: argparse.Namespace) -> int:
    return _pricing(args, "POST", "/rollback", {"idempotency_key": args.idempotency_key})


def _ledger_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ledger-url", help="the ledger's query API [env CREDITGATE_LEDGER_URL]")
    parser.add_argument("--token", help="your pricing token [env CREDITGATE_PRICING_TOKEN]")


def add_policy_commands(commands: Any) -> None:
    """Add ``policy`` and its subcommands to the ``creditgate`` parser's subcommands."""
    policy = commands.add_parser("policy", help="work with catalog files")
    sub = policy.add_subparsers(dest="policy_command", required=True)
    validate = sub.add_parser("validate", help="check catalog files; exit 1 on error")
    validate.add_argument("files", nargs="+", metavar="FILE")
    validate.set_defaults(run=_validate)
    changes = sub.add_parser(
        "diff", help="what NEW changes from OLD: prices old -> new, plans, limits, grants, models"
    )
    changes.add_argument("old", metavar="OLD")
    changes.add_argument("new", metavar="NEW")
    changes.add_argument("--json", action="store_true", help="print the changes as JSON")
    changes.set_defaults(run=_diff)
    replay = sub.add_parser(
        "simulate",
        help="replay the ledger's calls of a window under FILE: revenue, cost of serve, "
        "margin before and after, and the calls its limits would have denied (read-only)",
    )
    replay.add_argument("file", metavar="FILE")
    replay.add_argument("--from", dest="start", required=True, help="RFC 3339 time, inclusive")
    replay.add_argument("--to", dest="end", required=True, help="RFC 3339 time, exclusive")
    replay.add_argument("--database-url", help="the ledger's PostgreSQL URL [env DATABASE_URL]")
    replay.add_argument("--json", action="store_true", help="print the report as JSON")
    add_environment_flag(replay)
    replay.set_defaults(run=_simulate)
    submit = sub.add_parser(
        "propose", help="submit FILE as a catalog proposal: validated, diffed, simulated, stored"
    )
    submit.add_argument("file", metavar="FILE")
    submit.add_argument("--rationale", required=True, help="why, for the approver")
    submit.add_argument("--idempotency-key", help="default: the file's SHA-256")
    submit.add_argument("--from", dest="start", help="simulation window start (default: 30 days)")
    submit.add_argument("--to", dest="end", help="simulation window end (default: now)")
    _ledger_flags(submit)
    submit.set_defaults(run=_propose)
    yes = sub.add_parser("approve", help="put another's proposal in force (approver token)")
    yes.add_argument("id", metavar="PROPOSAL_ID")
    _ledger_flags(yes)
    yes.set_defaults(run=_approve)
    back = sub.add_parser("rollback", help="restore the catalog the last decision replaced")
    back.add_argument("--idempotency-key", required=True, help="a retry with it changes nothing")
    _ledger_flags(back)
    back.set_defaults(run=_rollback)
