"""``/healthz``, ``/readyz`` and ``/metrics``: on the public API, and on a listener of their own
that Prometheus and kubelet probes reach while the API stays on localhost. Shared by the
sidecar and the ledger."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from sidecar.http.codec import json_response

__all__ = ["Readiness", "add_probes", "probes_app"]

Readiness = Callable[[], Awaitable[tuple[bool, dict[str, Any]]]]
"""Whether the process can serve, and the body that says why (or why not)."""


def add_probes(app: web.Application, registry: CollectorRegistry, ready: Readiness) -> None:
    async def healthz(_: web.Request) -> web.Response:
        return json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        ok, body = await ready()
        return json_response(body, 200 if ok else 503)

    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)


def probes_app(registry: CollectorRegistry, ready: Readiness) -> web.Application:
    """An application with the three probe routes and nothing else."""
    app = web.Application()
    add_probes(app, registry, ready)
    return app
