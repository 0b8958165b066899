"""Identifier rules for ids that become parts of Redis keys and ledger rows."""

from __future__ import annotations

import re

from sidecar.errors import InvalidInput

__all__ = ["ID_RULE", "check_id", "is_id"]

ID_RULE = "1 to 128 characters of letters, digits and . _ @ -, starting with a letter or digit"
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,127}")


def is_id(value: object) -> bool:
    return isinstance(value, str) and _ID.fullmatch(value) is not None


def check_id(field: str, value: str) -> str:
    if not is_id(value):
        raise InvalidInput(field, f"must be {ID_RULE}, got {value!r}")
    return value
