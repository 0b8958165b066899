"""Free text in requests (tags, labels, reasons, rationales, URLs): anything but NUL.

PostgreSQL's ``text`` and ``jsonb`` cannot hold the NUL character, and every such field ends
up in the ledger; one that reached it would stop ingest at that entry. Request types declare
these fields ``Text``, which msgspec checks as it decodes (HTTP and gRPC alike), and the error
names the field (locate.py).
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from sidecar.errors import InvalidInput

__all__ = ["NUL_FREE", "NUL_PROBLEM", "Text", "check_text"]

NUL_FREE = r"^[^\x00]*$"
Text = Annotated[str, msgspec.Meta(pattern=NUL_FREE)]
NUL_PROBLEM = "contains a NUL character (\\u0000), which cannot be stored; remove it"


def check_text(field: str, value: str) -> str:
    """``value`` if it has no NUL (a path segment, say), else InvalidInput naming ``field``."""
    if "\x00" in value:
        raise InvalidInput(field, NUL_PROBLEM)
    return value
