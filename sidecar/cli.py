"""The ``creditgate`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from sidecar.catalog import load_catalog
from sidecar.errors import CatalogError

__all__ = ["main"]


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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="creditgate", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    policy = commands.add_parser("policy", help="work with catalog files")
    policy_commands = policy.add_subparsers(dest="policy_command", required=True)
    validate = policy_commands.add_parser("validate", help="check catalog files; exit 1 on error")
    validate.add_argument("files", nargs="+", metavar="FILE")
    validate.set_defaults(run=_validate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
