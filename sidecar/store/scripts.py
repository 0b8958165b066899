"""Lua scripts: package data files, loaded once and called by SHA, reloaded on NOSCRIPT.

Each script runs as: the layout's names (``layout.lua_prelude()``), the shared helpers
(``lua/_lib.lua``), then the script itself."""

from __future__ import annotations

import hashlib
from importlib import resources

from sidecar.store.layout import lua_prelude

__all__ = ["SCRIPT_NAMES", "Script", "load_scripts"]

SCRIPT_NAMES = (
    "reserve", "commit", "release", "void", "grant", "set_budget", "upsert_customer",
    "read_state", "restore_state", "grow", "set_alerts", "correct",
)  # fmt: skip


class Script:
    """One script's full source (shared helpers prepended) and its SHA1."""

    __slots__ = ("name", "sha", "source")

    def __init__(self, name: str, source: str) -> None:
        self.name = name
        self.source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()


def load_scripts() -> dict[str, Script]:
    folder = resources.files("sidecar.store") / "lua"
    lib = lua_prelude() + (folder / "_lib.lua").read_text(encoding="utf-8")
    return {
        name: Script(name, lib + "\n" + (folder / f"{name}.lua").read_text(encoding="utf-8"))
        for name in SCRIPT_NAMES
    }
