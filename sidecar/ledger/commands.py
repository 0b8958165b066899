"""``creditgate ledger serve | reconcile | rebuild | webhooks replay``: flags here; the work
is imported on run.

This module imports nothing heavy, so that ``creditgate`` starts fast for every command.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from sidecar.environment import add_environment_flag, environment_of
from sidecar.ledger.settings import add_ledger_flags
from sidecar.store.layout import IDEMPOTENCY_WINDOW_MS
from sidecar.times import wall_clock_ms

__all__ = ["add_ledger_commands"]


def _serve(args: argparse.Namespace) -> int:
    import uvloop  # noqa: PLC0415

    from sidecar.ledger.server import serve_ledger  # noqa: PLC0415
    from sidecar.ledger.settings import ledger_settings_from  # noqa: PLC0415

    uvloop.run(serve_ledger(ledger_settings_from(args, os.environ)))
    return 0


async def _operate(args: argparse.Namespace) -> int:
    """reconcile, rebuild or backfill-credentials: they read the ledger and Redis, named by
    flags or environment."""

    import msgspec  # noqa: PLC0415

    from sidecar.catalog import load_catalog  # noqa: PLC0415
    from sidecar.errors import RequestError  # noqa: PLC0415
    from sidecar.ledger.db import load_catalogs, open_pool  # noqa: PLC0415
    from sidecar.ledger.facts import ledger_customers  # noqa: PLC0415
    from sidecar.ledger.generation import status as generation_status  # noqa: PLC0415
    from sidecar.ledger.rebuild import (  # noqa: PLC0415
        backfill_credentials,
        rebuild_customer,
        resume_serving,
    )
    from sidecar.ledger.reconcile import reconcile  # noqa: PLC0415
    from sidecar.settings import SettingsError  # noqa: PLC0415
    from sidecar.store.topology import agree_layout, make_client  # noqa: PLC0415

    def required(flag: str, value: str | None, variable: str) -> str:
        value = value or os.environ.get(variable)
        if not value:
            raise SettingsError(f"{flag} (or {variable}) is required")
        return value

    redis_url = required("--redis", args.redis, "CREDITGATE_REDIS")
    database_url = required("--database-url", args.database_url, "DATABASE_URL")
    catalog_file = required("--catalog", args.catalog, "CREDITGATE_CATALOG")
    catalog = load_catalog(catalog_file)
    now_ms = wall_clock_ms()
    environment = environment_of(args, os.environ)
    client = make_client(redis_url)
    pool = await open_pool(database_url, max_size=2, environment=environment)
    try:
        shards = args.shards or os.environ.get("CREDITGATE_SHARDS")
        keys = await agree_layout(client, int(shards) if shards else None, environment)
        async with pool.acquire() as connection:
            catalogs = await load_catalogs(connection)
            customers = args.customer or await ledger_customers(connection)
            if args.ledger_command == "reconcile":
                report = await reconcile(
                    client, keys, connection, customers, catalogs=catalogs, catalog=catalog,
                    now_ms=now_ms, group=args.group,
                )  # fmt: skip
                if args.json:
                    print(msgspec.json.encode(report).decode())
                else:
                    if report.lost:
                        print(report.lost)
                    for d in report.differences:
                        print(f"{d.customer} {d.key} {d.field}: redis {d.redis} ledger {d.ledger}")
                    for customer, waiting in report.unsettled.items():
                        print(f"{customer}: {waiting} events not yet in the ledger")
                    print(
                        f"{report.customers} customers, {len(report.differences)} differences",
                        file=sys.stderr,
                    )
                return 1 if report.differences or report.lost else 0
            if args.ledger_command == "backfill-credentials":
                stored = 0
                for customer in customers:
                    stored += await backfill_credentials(client, keys, connection, customer)
                print(
                    f"{len(customers)} customers, {stored} credentials stored in the ledger "
                    "(those it had already are left as they are)"
                )
                return 0
            if not args.customer and not args.all:
                raise SettingsError("name --customer ID (repeatable) or --all")
            lost = await generation_status(client, keys, connection)
            # What a Redis that lost state holds of a customer (a rolled-back copy) is not
            # trusted: rebuild --all replaces it with the ledger's.
            force = args.force or (args.all and lost is not None)
            if force and not args.force:
                print("Redis lost state: replacing what it holds of each customer", file=sys.stderr)
            failed = 0
            for customer in customers:
                try:
                    state = await rebuild_customer(
                        client, keys, connection, customer, catalogs=catalogs, catalog=catalog,
                        now_ms=now_ms, force=force, window_ms=args.idempotency_window_ms,
                    )  # fmt: skip
                except RequestError as error:
                    print(f"{customer}: not rebuilt: {error.message}", file=sys.stderr)
                    failed += 1
                    continue
                print(
                    f"{customer}: rebuilt {len(state.buckets)} buckets, "
                    f"{len(state.hashes)} keys, {len(state.idempotency_keys)} grant keys"
                )
            if args.all and not failed:
                if resumed := await resume_serving(client, keys, connection):
                    print(resumed, file=sys.stderr)
            elif lost is not None:
                print(f"{lost}; it serves again after rebuild --all rebuilds every customer",
                      file=sys.stderr)  # fmt: skip
            return 1 if failed else 0
    finally:
        await pool.close()
        await client.aclose()


def _run_operation(args: argparse.Namespace) -> int:
    import asyncio  # noqa: PLC0415

    return asyncio.run(_operate(args))


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--redis", help="Redis URL [env CREDITGATE_REDIS]")
    parser.add_argument("--database-url", help="the ledger's PostgreSQL URL [env DATABASE_URL]")
    parser.add_argument("--catalog", help="catalog file [env CREDITGATE_CATALOG]")
    parser.add_argument(
        "--shards", type=int, help="shards of the deployment [env CREDITGATE_SHARDS]"
    )
    parser.add_argument(
        "--customer", action="append", help="only this customer (repeatable; default: all)"
    )
    add_environment_flag(parser)


async def _replay(args: argparse.Namespace) -> int:
    from sidecar.errors import RequestError  # noqa: PLC0415
    from sidecar.ledger.db import open_pool  # noqa: PLC0415
    from sidecar.ledger.webhooks import replay  # noqa: PLC0415
    from sidecar.settings import SettingsError  # noqa: PLC0415

    database_url = args.database_url or os.environ.get("DATABASE_URL")
    if not database_url:
        raise SettingsError("--database-url (or DATABASE_URL) is required")
    pool = await open_pool(database_url, max_size=1, environment=environment_of(args, os.environ))
    try:
        async with pool.acquire() as connection:
            due = await replay(connection, args.endpoint, args.alert)
    except RequestError as error:
        print(f"error: {error.field}: {error.message}", file=sys.stderr)
        return 1
    finally:
        await pool.close()
    print(f"endpoint {args.endpoint} enabled; {due} deliveries due now")
    return 0


def _run_replay(args: argparse.Namespace) -> int:
    import asyncio  # noqa: PLC0415

    return asyncio.run(_replay(args))


def add_ledger_commands(commands: Any) -> None:
    """Add ``ledger`` and its subcommands to the ``creditgate`` parser's subcommands."""
    ledger = commands.add_parser("ledger", help="the central ledger: ingest, query, reconcile")
    sub = ledger.add_subparsers(dest="ledger_command", required=True)
    serve = sub.add_parser("serve", help="ingest the consumption streams and serve queries")
    add_ledger_flags(serve)
    serve.set_defaults(run=_serve)
    check = sub.add_parser(
        "reconcile",
        help="compare Redis with the ledger; exit 1 on any difference, or if Redis lost state",
    )
    _common(check)
    check.add_argument("--group", default="ledger", help="the ledger's consumer group")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.set_defaults(run=_run_operation)
    rebuild = sub.add_parser("rebuild", help="restore customers' Redis state from the ledger")
    _common(rebuild)
    rebuild.add_argument("--all", action="store_true", help="every customer of the ledger")
    rebuild.add_argument(
        "--force", action="store_true", help="replace state still in Redis (drops holds)"
    )
    rebuild.add_argument(
        "--idempotency-window-ms", type=int, default=IDEMPOTENCY_WINDOW_MS,
        help="restore the records of commits this recent: the sidecars' setting "
        f"(default {IDEMPOTENCY_WINDOW_MS})",
    )  # fmt: skip
    rebuild.set_defaults(run=_run_operation)
    backfill = sub.add_parser(
        "backfill-credentials",
        help="store in the ledger the proxy keys and admin tokens issued before it kept them "
        "(once, after upgrading), so that rebuild restores them",
    )
    _common(backfill)
    backfill.set_defaults(run=_run_operation)
    hooks = sub.add_parser("webhooks", help="alert webhook endpoints (ledger/webhooks.py)")
    hook_commands = hooks.add_subparsers(dest="webhooks_command", required=True)
    again = hook_commands.add_parser(
        "replay",
        help="enable an endpoint again and send what it missed (or one alert, once more)",
    )
    again.add_argument("--endpoint", required=True, help="the endpoint id (wh_...)")
    again.add_argument("--alert", help="send this alert again, delivered or not")
    again.add_argument("--database-url", help="the ledger's database (or DATABASE_URL)")
    add_environment_flag(again)
    again.set_defaults(run=_run_replay)
