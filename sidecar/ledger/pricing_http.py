"""The pricing API over HTTP, mounted at ``/ledger/v1/pricing`` on the ledger's query API:
thin, over ledger/proposals.py, which says who may do what (``GET .../actions`` lists it).

Bearer token: the operator's ledger token, or a pricing token (``pt_...``). Errors are those
of the sidecar, plus 409 ``conflict`` for a proposal diffed against a catalog no longer in
force.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
from aiohttp import web

from sidecar.catalog import load_catalog
from sidecar.catalog.diff import diff
from sidecar.errors import PermissionDenied
from sidecar.http.codec import decode, json_response
from sidecar.http.errors import Handler, error_middleware
from sidecar.http.keys import MAX_BODY_BYTES
from sidecar.ledger import proposals
from sidecar.ledger.db import Pool
from sidecar.ledger.settings import LEDGER_MAX_BYTES
from sidecar.ledger.simulate import simulate
from sidecar.text import Text, check_text
from sidecar.times import wall_clock_ms

__all__ = ["PRICING", "pricing_app"]

PRICING = "/ledger/v1/pricing"
_POOL: web.AppKey[Pool] = web.AppKey("pricing_pool")
_TOKEN = web.AppKey("pricing_token", bytes)
_PATH = web.AppKey("catalog_path", str)
_CALLER = web.RequestKey("pricer", proposals.Pricer)


@web.middleware
async def _authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    header = request.headers.get("Authorization", "")
    request[_CALLER] = await proposals.pricer_of(
        request.app[_POOL], header, request.app[_TOKEN], field="Authorization"
    )
    return await handler(request)


class _CatalogBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    catalog: Text
    start: str | None = msgspec.field(default=None, name="from")
    end: str | None = msgspec.field(default=None, name="to")


async def _catalog(request: web.Request) -> web.Response:
    proposals.allow(request[_CALLER], "read_catalog")
    path = request.app[_PATH]
    text = Path(path).read_text(encoding="utf-8")
    return json_response({"version": load_catalog(path).version, "catalog": text})


async def _diff(request: web.Request) -> web.Response:
    proposals.allow(request[_CALLER], "diff")
    body = decode(await request.read(), _CatalogBody)
    new, current = proposals.parse_proposed(body.catalog), load_catalog(request.app[_PATH])
    changes = diff(current, new)
    return json_response(
        {"from_version": current.version, "to_version": new.version, "changes": changes}
    )


async def _simulate(request: web.Request) -> web.Response:
    proposals.allow(request[_CALLER], "simulate")
    body = decode(await request.read(), _CatalogBody)
    catalog = proposals.parse_proposed(body.catalog)
    start, end = proposals.window(body.start, body.end, wall_clock_ms())
    async with request.app[_POOL].acquire() as connection:
        return json_response(await simulate(connection, catalog, start, end))


async def _margin(request: web.Request) -> web.Response:
    proposals.allow(request[_CALLER], "read_margin")
    start, end = proposals.window(
        request.query.get("from"), request.query.get("to"), wall_clock_ms()
    )
    catalog = load_catalog(request.app[_PATH])
    async with request.app[_POOL].acquire() as connection:
        return json_response(await simulate(connection, catalog, start, end))


async def _propose(request: web.Request) -> web.Response:
    body = decode(await request.read(), proposals.ProposeRequest)
    async with request.app[_POOL].acquire() as connection:
        answer = await proposals.propose(
            connection, request[_CALLER], request.app[_PATH], body, wall_clock_ms()
        )
    return json_response(answer)


async def _list(request: web.Request) -> web.Response:
    async with request.app[_POOL].acquire() as connection:
        return json_response({"proposals": await proposals.proposals(connection, request[_CALLER])})


async def _one(request: web.Request) -> web.Response:
    async with request.app[_POOL].acquire() as connection:
        found = await proposals.proposal(
            connection, request[_CALLER], check_text("id", request.match_info["id"])
        )
    return json_response(found)


async def _approve(request: web.Request) -> web.Response:
    async with request.app[_POOL].acquire() as connection:
        answer = await proposals.approve(
            connection, request[_CALLER], request.app[_PATH], request.match_info["id"]
        )
    return json_response(answer)


async def _rollback(request: web.Request) -> web.Response:
    body = decode(await request.read(), proposals.RollbackRequest)
    async with request.app[_POOL].acquire() as connection:
        answer = await proposals.rollback(connection, request[_CALLER], request.app[_PATH], body)
    return json_response(answer)


async def _issue(request: web.Request) -> web.Response:
    if request[_CALLER].role != "operator":
        raise PermissionDenied("Authorization", "pricing tokens are issued with the ledger token")
    body = decode(await request.read(), proposals.IssueRequest)
    async with request.app[_POOL].acquire() as connection:
        return json_response(await proposals.issue_token(connection, body))


async def _actions(request: web.Request) -> web.Response:
    return json_response({"actions": proposals.ACTIONS})


def pricing_app(pool: Pool, token: str, catalog_path: str) -> web.Application:
    """The pricing API on ``pool``, over the catalog file at ``catalog_path`` (the one every
    sidecar reloads); mount it at PRICING."""
    app = web.Application(
        middlewares=[error_middleware, _authenticate], client_max_size=LEDGER_MAX_BYTES
    )
    app[_POOL] = pool
    app[_TOKEN] = token.encode()
    app[_PATH] = catalog_path
    app[MAX_BODY_BYTES] = LEDGER_MAX_BYTES
    app.router.add_get("/catalog", _catalog)
    app.router.add_post("/diff", _diff)
    app.router.add_post("/simulate", _simulate)
    app.router.add_get("/margin", _margin)
    app.router.add_post("/proposals", _propose)
    app.router.add_get("/proposals", _list)
    app.router.add_get("/proposals/{id}", _one)
    app.router.add_post("/proposals/{id}/approve", _approve)
    app.router.add_post("/rollback", _rollback)
    app.router.add_post("/tokens", _issue)
    app.router.add_get("/actions", _actions)
    return app
