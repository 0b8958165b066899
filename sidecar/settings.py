"""Settings: one typed struct, from flags or ``CREDITGATE_*`` environment variables; fails fast."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

import msgspec

__all__ = ["Settings", "SettingsError", "add_flags", "settings_from"]


class SettingsError(Exception):
    """A setting is missing or malformed; the message names the flag and its variable."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    catalog: str
    """Catalog file (YAML)."""
    redis: str
    """Redis URL, redis://host:port/db."""
    host: str = "127.0.0.1"
    port: int = 7070
    admin_port: int = 7071
    grpc_port: int = 7072
    grpc_admin_port: int = 7073
    http: bool = True
    """Serve HTTP (the public API, and the admin API when a token is set)."""
    grpc: bool = True
    """Serve gRPC (the public service, and the admin service when a token is set)."""
    admin_token: str | None = None
    """The admin listeners run only when a token is set."""
    cache_max_entries: int = 100_000
    cache_ttl_s: int = 30
    redis_timeout_ms: int = 250
    max_body_bytes: int = 65_536


_HELP = {
    "catalog": "catalog file (YAML)",
    "redis": "Redis URL, e.g. redis://127.0.0.1:6379/0",
    "host": "address to bind (default 127.0.0.1)",
    "port": "public API port (default 7070; 0 picks a free one)",
    "admin_port": "admin API port (default 7071; runs only with an admin token)",
    "grpc_port": "gRPC port (default 7072; 0 picks a free one)",
    "grpc_admin_port": "gRPC admin port (default 7073; runs only with an admin token)",
    "http": "serve HTTP: true or false (default true)",
    "grpc": "serve gRPC: true or false (default true)",
    "admin_token": "bearer token the admin API requires",
    "cache_max_entries": "customers cached in process (default 100000)",
    "cache_ttl_s": "seconds a cached customer lives without an invalidation (default 30)",
    "redis_timeout_ms": "Redis connect and read timeout (default 250)",
    "max_body_bytes": "largest request body accepted (default 65536)",
}


def _flag(field: str) -> str:
    return "--" + field.replace("_", "-")


def _variable(field: str) -> str:
    return "CREDITGATE_" + field.upper()


def add_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per setting; each defaults to its environment variable, then to the struct."""
    for field in Settings.__struct_fields__:
        parser.add_argument(
            _flag(field),
            dest=field,
            default=None,
            help=f"{_HELP[field]} [env {_variable(field)}]",
        )


def settings_from(
    flags: argparse.Namespace, environ: Mapping[str, str], **overrides: Any
) -> Settings:
    """Merge flags over environment over ``overrides`` over defaults; raise SettingsError."""
    raw: dict[str, Any] = dict(overrides)
    for field in Settings.__struct_fields__:
        value = getattr(flags, field, None)
        if value is None:
            value = environ.get(_variable(field))
        if value is not None:
            raw[field] = value
    for field in ("catalog", "redis"):
        if not raw.get(field):
            raise SettingsError(
                f"{_flag(field)} (or {_variable(field)}) is required: {_HELP[field]}"
            )
    try:
        settings = msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as error:
        field = str(error).rpartition("$.")[2].rstrip("`")
        kind = "true or false" if field in ("http", "grpc") else "an integer"
        raise SettingsError(
            f"{_flag(field)} (or {_variable(field)}): must be {kind}, got {raw[field]!r}"
        ) from None
    if not settings.http and not settings.grpc:
        raise SettingsError("--http and --grpc are both false: nothing would be served")
    for field in ("port", "admin_port", "grpc_port", "grpc_admin_port"):
        if not 0 <= getattr(settings, field) <= 65_535:
            raise SettingsError(f"{_flag(field)} (or {_variable(field)}): must be 0 to 65535")
    for field in ("cache_max_entries", "cache_ttl_s", "redis_timeout_ms", "max_body_bytes"):
        if getattr(settings, field) <= 0:
            raise SettingsError(f"{_flag(field)} (or {_variable(field)}): must be above 0")
    if not settings.redis.startswith(("redis://", "rediss://", "unix://")):
        raise SettingsError(
            f"--redis (or CREDITGATE_REDIS): {settings.redis!r} is not a redis:// URL"
        )
    if settings.admin_token is not None and len(settings.admin_token) < 16:
        raise SettingsError("--admin-token (or CREDITGATE_ADMIN_TOKEN): use at least 16 characters")
    return settings
