"""Environments: one name (setting ``environment``, default ``live``) that namespaces every
Redis key and stream (store/layout.py, ``Layout.head``) and the ledger's PostgreSQL schema
(ledger/db.py, ``schema``), so that a ``sandbox`` sidecar and ledger can run beside the live
ones on the same servers with no way to read or move live money. Every HTTP answer names its
environment in HEADER, every gRPC answer in the trailing metadata key METADATA.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping

from sidecar.errors import SettingsError

__all__ = [
    "HEADER", "LIVE", "METADATA", "VARIABLE", "add_environment_flag", "check_environment",
    "environment_of",
]  # fmt: skip

LIVE = "live"
"""The default: the keys and schema of a deployment from before environments, unchanged."""
HEADER = "Creditgate-Environment"
METADATA = "creditgate-environment"
VARIABLE = "CREDITGATE_ENVIRONMENT"
_NAME = re.compile(r"[a-z][a-z0-9_]{0,30}")


def check_environment(name: str, flag: str = f"--environment (or {VARIABLE})") -> str:
    """``name`` if it is an environment name, else SettingsError naming ``flag``."""
    if not _NAME.fullmatch(name):
        raise SettingsError(
            f"{flag}: {name!r} is not an environment name: 1 to 31 lowercase letters, digits "
            "or _, starting with a letter (e.g. live, sandbox)"
        )
    return name


def add_environment_flag(parser: argparse.ArgumentParser) -> None:
    """``--environment`` of a command that works on a deployment's Redis or ledger."""
    parser.add_argument(
        "--environment", help=f"the deployment's environment (default {LIVE}) [env {VARIABLE}]"
    )


def environment_of(args: argparse.Namespace, environ: Mapping[str, str]) -> str:
    """The flag, else the variable, else live; SettingsError if it is not a name."""
    return check_environment(args.environment or environ.get(VARIABLE) or LIVE)
