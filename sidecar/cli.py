"""The ``creditgate`` command: ``serve``, ``up``, ``health``, ``policy`` (catalog/commands.py),
``store migrate`` and ``ledger``."""

from __future__ import annotations

import argparse
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence

import uvloop

from sidecar.catalog.commands import add_policy_commands
from sidecar.environment import LIVE, add_environment_flag, check_environment, environment_of
from sidecar.errors import CatalogError
from sidecar.logs import configure_logging
from sidecar.settings import SettingsError, add_flags, settings_from

__all__ = ["main"]

PORTS = {
    "port": 7070,
    "admin_port": 7071,
    "grpc_port": 7072,
    "grpc_admin_port": 7073,
    "ledger_port": 7074,
    "proxy_port": 7075,
    "demo_upstream_port": 7076,
    "ledger_grpc_port": 7077,
}
SANDBOX_PORT_SHIFT = 100


def health_url(environ: Mapping[str, str]) -> str:
    """Where a sidecar (or a ledger) configured by ``environ`` answers /healthz: its metrics
    listener when it has one, else the sidecar's public port."""
    port = (
        environ.get("CREDITGATE_METRICS_PORT")
        or environ.get("CREDITGATE_LEDGER_METRICS_PORT")
        or environ.get("CREDITGATE_PORT")
        or "7070"
    )
    return f"http://127.0.0.1:{port}/healthz"


def _health(args: argparse.Namespace) -> int:
    url = args.url or health_url(os.environ)
    try:
        with urllib.request.urlopen(url, timeout=args.timeout) as response:
            print(f"ok: {url}: {response.status}")
            return 0
    except (urllib.error.URLError, OSError) as error:
        print(f"error: {url}: {getattr(error, 'reason', error)}", file=sys.stderr)
        return 1


def _serve(args: argparse.Namespace) -> int:
    from sidecar.server import serve  # noqa: PLC0415 - keeps `policy validate` light

    settings = settings_from(args, os.environ)
    uvloop.run(serve(settings))
    return 0


def _up(args: argparse.Namespace) -> int:
    from sidecar.up import up  # noqa: PLC0415 - keeps `policy validate` light

    environment = environment_of(args, os.environ)
    # Beside a live `up`, another environment's defaults are 100 above, so both can run.
    shift = 0 if environment == LIVE else SANDBOX_PORT_SHIFT
    ports = {
        name: default + shift if getattr(args, name) is None else getattr(args, name)
        for name, default in PORTS.items()
    }
    uvloop.run(up(redis=args.redis, environment=environment, **ports))
    return 0


def _mcp(args: argparse.Namespace) -> int:
    from sidecar.ledger.mcp_server import run  # noqa: PLC0415 - the SDK is heavy

    run()
    return 0


def _migrate(args: argparse.Namespace) -> int:
    import asyncio  # noqa: PLC0415

    from sidecar.store.layout import SHARDS_DEFAULT, SHARDS_MAX, Layout  # noqa: PLC0415
    from sidecar.store.migrate import migrate  # noqa: PLC0415
    from sidecar.store.topology import make_client  # noqa: PLC0415

    url = args.redis or os.environ.get("CREDITGATE_REDIS")
    if not url:
        raise SettingsError("--redis (or CREDITGATE_REDIS) is required")
    given = args.shards or os.environ.get("CREDITGATE_SHARDS") or str(SHARDS_DEFAULT)
    if not given.isdigit() or not 1 <= int(given) <= SHARDS_MAX:
        raise SettingsError(
            f"--shards (or CREDITGATE_SHARDS): must be an integer from 1 to {SHARDS_MAX}, "
            f"got {given!r}"
        )
    shards = int(given)

    async def run() -> int:
        client = make_client(url)
        try:
            moved = await migrate(client, Layout(shards), group=args.group)
        finally:
            await client.aclose()
        print(
            f"moved {moved.customers} customers, {moved.keys} keys and {moved.entries} "
            f"stream entries not yet in the ledger, into {shards} shards"
        )
        return 0

    return asyncio.run(run())


def _copy(args: argparse.Namespace) -> int:
    import asyncio  # noqa: PLC0415

    from sidecar.catalog import load_catalog  # noqa: PLC0415
    from sidecar.errors import RequestError  # noqa: PLC0415
    from sidecar.sandbox import copy_catalog, copy_environment  # noqa: PLC0415

    url = args.redis or os.environ.get("CREDITGATE_REDIS")
    catalog_file = args.catalog or os.environ.get("CREDITGATE_CATALOG")
    if not url or not catalog_file:
        raise SettingsError(
            "--redis (or CREDITGATE_REDIS) and --catalog (or CREDITGATE_CATALOG) are required: "
            "the Redis both environments use, and the source's catalog file"
        )
    source = check_environment(args.source, "--from")
    target = check_environment(args.target, "--to")
    if args.catalog_to:
        catalog = copy_catalog(catalog_file, args.catalog_to)
        print(f"catalog {catalog.version} written to {args.catalog_to}")
    else:
        catalog = load_catalog(catalog_file)
    try:
        copied = asyncio.run(copy_environment(url, source, target, catalog, balances=args.balances))
    except RequestError as error:  # the target refused a customer (an unknown plan, say)
        print(f"error: {error.field}: {error.message}", file=sys.stderr)
        return 1
    print(
        f"copied {copied.customers} customers, {copied.budgets} budgets and {copied.grants} "
        f"balance grants from {source} to {target}"
    )
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="creditgate", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the sidecar")
    add_flags(serve)
    serve.set_defaults(run=_serve)

    up = commands.add_parser("up", help="run everything locally on embedded defaults")
    up.add_argument(
        "--redis",
        default=os.environ.get("CREDITGATE_REDIS"),
        help="use this Redis instead of starting one [env CREDITGATE_REDIS]",
    )
    add_environment_flag(up)
    for name, default in PORTS.items():
        flag = "--" + name.replace("_", "-")
        up.add_argument(
            flag, type=int, help=f"(default {default}, {default + SANDBOX_PORT_SHIFT} outside "
            f"{LIVE}; 0: any free)",
        )  # fmt: skip
    up.set_defaults(run=_up)

    health = commands.add_parser(
        "health", help="exit 0 when a sidecar answers /healthz (the container HEALTHCHECK)"
    )
    health.add_argument(
        "--url",
        help="default: http://127.0.0.1:<CREDITGATE_METRICS_PORT or CREDITGATE_PORT>/healthz",
    )
    health.add_argument("--timeout", type=float, default=2.0, help="seconds (default 2)")
    health.set_defaults(run=_health)

    add_policy_commands(commands)
    tools = commands.add_parser(
        "mcp",
        help="serve the pricing primitives as MCP tools over stdio "
        "[env CREDITGATE_LEDGER_URL, CREDITGATE_PRICING_TOKEN]",
    )
    tools.set_defaults(run=_mcp)

    store = commands.add_parser("store", help="work with the Redis layout")
    store_commands = store.add_subparsers(dest="store_command", required=True)
    move = store_commands.add_parser(
        "migrate",
        help="move a Redis from the layout before shards into shards (sidecars and ledger stopped)",
    )
    move.add_argument("--redis", help="Redis URL [env CREDITGATE_REDIS]")
    move.add_argument("--shards", help="shards to lay out (default 256) [env CREDITGATE_SHARDS]")
    move.add_argument("--group", default="ledger", help="the ledger's consumer group")
    move.set_defaults(run=_migrate)

    environments = commands.add_parser("environment", help="environments: live, sandboxes")
    environment_commands = environments.add_subparsers(dest="environment_command", required=True)
    copy = environment_commands.add_parser(
        "copy",
        help="copy the catalog and customers (plan, contract, budgets) of one environment into "
        "another on the same Redis; balances only with --balances",
    )
    copy.add_argument("--to", dest="target", required=True, help="the environment to seed")
    copy.add_argument("--from", dest="source", default=LIVE, help=f"default {LIVE}")
    copy.add_argument("--redis", help="Redis URL [env CREDITGATE_REDIS]")
    copy.add_argument("--catalog", help="the source's catalog file [env CREDITGATE_CATALOG]")
    copy.add_argument("--catalog-to", help="write that catalog here, for the target's sidecars")
    copy.add_argument(
        "--balances", action="store_true", help="grant each unexpired bucket in the target too"
    )
    copy.set_defaults(run=_copy)

    from sidecar.ledger.commands import add_ledger_commands  # noqa: PLC0415 - flags only

    add_ledger_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        # `up` is for a person at a terminal: text lines, unless the environment says otherwise.
        configure_logging(os.environ, "text" if args.command == "up" else "json")
        return int(args.run(args))
    except (SettingsError, CatalogError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
