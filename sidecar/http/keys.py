"""Typed keys of what the HTTP applications carry."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import Counter

from sidecar.service import Service

__all__ = ["ADMIN_TOKEN", "MAX_BODY_BYTES", "REQUEST_ERRORS", "SERVICE"]

SERVICE = web.AppKey("service", Service)
MAX_BODY_BYTES = web.AppKey("max_body_bytes", int)
ADMIN_TOKEN = web.AppKey("admin_token", bytes)
REQUEST_ERRORS = web.AppKey("request_errors", Counter)
"""Where error answers are counted, by transport and code (apps without one count nothing)."""
