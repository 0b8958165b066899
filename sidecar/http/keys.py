"""Typed keys of what the HTTP applications carry."""

from __future__ import annotations

from aiohttp import web

from sidecar.service import Service

__all__ = ["ADMIN_TOKEN", "MAX_BODY_BYTES", "SERVICE"]

SERVICE = web.AppKey("service", Service)
MAX_BODY_BYTES = web.AppKey("max_body_bytes", int)
ADMIN_TOKEN = web.AppKey("admin_token", bytes)
