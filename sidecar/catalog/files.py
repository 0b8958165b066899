"""Writing a catalog file where sidecars and the ledger hot-reload it (reload.py)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["replace_file"]


def replace_file(path: str, text: str) -> None:
    """Replace the file at ``path`` with ``text`` at once (a temporary file beside it,
    fsynced, renamed over it): readers see the old file or the new one, never half of it."""
    folder = str(Path(path).resolve().parent)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".catalog-")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
