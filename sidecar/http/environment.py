"""Every HTTP answer names its environment (sidecar/environment.py), errors and streams too."""

from __future__ import annotations

from aiohttp import web

from sidecar.environment import HEADER

__all__ = ["name_environment"]


def name_environment(app: web.Application, environment: str) -> web.Application:
    """``app``, answering every request with the ``Creditgate-Environment`` header."""

    async def stamp(_: web.Request, response: web.StreamResponse) -> None:
        response.headers[HEADER] = environment

    app.on_response_prepare.append(stamp)
    return app
