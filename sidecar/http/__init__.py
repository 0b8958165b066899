"""The HTTP transport: thin aiohttp adapters over the service layer."""

from sidecar.http.admin import admin_app
from sidecar.http.api import api_app

__all__ = ["admin_app", "api_app"]
