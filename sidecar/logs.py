"""Structured logs: one JSON object per line on stderr, level from ``CREDITGATE_LOG_LEVEL``.

A line carries the time, level, logger and message, plus whatever the call site passed in
``extra`` (catalog version, request id, file...). Call sites log no tokens, prompts or
secrets; ``redacted`` strips them from settings before the config line.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import msgspec

from sidecar.settings import SettingsError

__all__ = ["JsonFormatter", "configure_logging", "redacted", "safe_url"]

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
FORMATS = ("json", "text")
SECRET_FIELDS = frozenset({"admin_token", "token", "database_url", "redis"})
SECRET_PARAMETERS = frozenset({"password", "passwd", "sslpassword", "pass"})
_RECORD_FIELDS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
_encoder = msgspec.json.Encoder(enc_hook=str)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return _encoder.encode(line).decode()


def safe_url(url: str) -> str:
    """``url`` fit for a log line: a password in the user part or the query is masked."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        credentials, _, host = netloc.rpartition("@")
        user = credentials.partition(":")[0]
        netloc = f"{user}:***@{host}" if user else f"***@{host}"
    query = urlencode(
        [
            (key, "***" if key.lower() in SECRET_PARAMETERS else value)
            for key, value in parse_qsl(parts.query, keep_blank_values=True)
        ],
        safe="*",
    )
    safe = urlunsplit(parts._replace(netloc=netloc, query=query))
    # urlunsplit writes unix:///path as unix:/path (no host); keep the form the user wrote.
    scheme = parts.scheme + ":"
    if "://" in url and not safe.startswith(scheme + "//"):
        safe = scheme + "//" + safe.removeprefix(scheme)
    return safe


def redacted(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Settings fit for a log line: tokens masked, passwords cut out of URLs."""
    return {key: _masked(v) if key in SECRET_FIELDS else v for key, v in settings.items()}


def _masked(value: str | None) -> str | None:
    if value is None:
        return None
    return safe_url(value) if "://" in value else "***"


def configure_logging(environ: Mapping[str, str], default_format: str = "json") -> None:
    """Send every logger to stderr in the format and at the level the environment asks."""
    level = environ.get("CREDITGATE_LOG_LEVEL", "INFO").upper()
    if level not in LEVELS:
        raise SettingsError(f"CREDITGATE_LOG_LEVEL: must be one of {', '.join(LEVELS)}")
    form = environ.get("CREDITGATE_LOG_FORMAT", default_format).lower()
    if form not in FORMATS:
        raise SettingsError("CREDITGATE_LOG_FORMAT: must be json or text")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter()
        if form == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
