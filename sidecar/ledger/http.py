"""The ledger's query API over HTTP (aiohttp), bearer-token protected. Thin: parse, query, answer.

``GET /ledger/v1/customers/{customer}/balance[?at=]``
``GET /ledger/v1/customers/{customer}/usage?from=&to=[&group_by=team,agent][&bucket=hour|day]``
``GET /ledger/v1/customers/{customer}/invoice?month=2026-11`` (or ``?from=&to=``)
``GET /ledger/v1/customers/{customer}/audit?from=&to=``: admin changes and who made them.
``GET /ledger/v1/export?from=&to=&format=csv|jsonl[&customer=]``
``GET /ledger/v1/status``: ingest counters and the stream lag.
Times are RFC 3339 with a zone; ranges are ``[from, to)``. Errors are those of the sidecar.

The bearer token is the operator's ledger token, or a scoped admin token (access.py): its
customer only; a team's token sees its team's usage and audit entries and the balance, not
the invoice or the export (they are the whole customer's).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
from aiohttp import web

from sidecar.access import Caller, require
from sidecar.auth import TokenCheck, authenticate
from sidecar.errors import InvalidInput, PermissionDenied
from sidecar.http.codec import json_response
from sidecar.http.errors import Handler, error_middleware
from sidecar.http.keys import MAX_BODY_BYTES
from sidecar.ids import check_id
from sidecar.ledger import queries
from sidecar.ledger.db import Pool, load_catalogs
from sidecar.ledger.wire import month_range
from sidecar.times import ms_of, parse_time

__all__ = ["Status", "ledger_app"]

Status = Callable[[], Awaitable[Any]]
_POOL: web.AppKey[Pool] = web.AppKey("pool")
_TOKEN = web.AppKey("token", bytes)
_CHECK: web.AppKey[TokenCheck] = web.AppKey("check")
_CALLER = web.RequestKey("caller", Caller)
_STATUS: web.AppKey[Status] = web.AppKey("status")
EXPORT_CHUNK_ROWS = 500
_BUCKETS: dict[str, queries.Bucket] = {"hour": "hour", "day": "day"}
_encoder = msgspec.json.Encoder()


@web.middleware
async def _authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    header = request.headers.get("Authorization", "")
    request[_CALLER] = await authenticate(
        header, request.app[_TOKEN], request.app[_CHECK], _now_ms(),
        field="Authorization", what="ledger token",
    )  # fmt: skip
    return await handler(request)


def _time(request: web.Request, name: str) -> int:
    text = request.query.get(name)
    if text is None:
        raise InvalidInput(name, "is required: an RFC 3339 time like 2026-11-08T00:00:00Z")
    return parse_time(name, text)


def _customer(request: web.Request, *, whole: bool = False) -> str:
    """The path's customer, once the caller may read it (``whole``: all of it, not a team's
    part)."""
    customer = check_id("customer", request.match_info["customer"])
    caller = request[_CALLER]
    require(caller, customer, "viewer", team=None if whole else caller.team)
    return customer


async def _balance(request: web.Request) -> web.Response:
    customer = _customer(request)
    at = parse_time("at", request.query["at"]) if "at" in request.query else _now_ms()
    async with request.app[_POOL].acquire() as connection:
        return json_response(await queries.balance(connection, customer, at))


async def _usage(request: web.Request) -> web.Response:
    customer = _customer(request)
    start, end = _time(request, "from"), _time(request, "to")
    group_by = [g for g in request.query.get("group_by", "").split(",") if g]
    text = request.query.get("bucket") or None
    bucket = _BUCKETS.get(text) if text is not None else None
    if text is not None and bucket is None:
        raise InvalidInput("bucket", f"must be hour or day, got {text!r}")
    team = request[_CALLER].team
    async with request.app[_POOL].acquire() as connection:
        answer = await queries.usage(connection, customer, start, end, group_by, bucket, team)
    return json_response(answer)


async def _audit(request: web.Request) -> web.Response:
    customer = _customer(request)
    start, end = _time(request, "from"), _time(request, "to")
    async with request.app[_POOL].acquire() as connection:
        answer = await queries.audit(connection, customer, start, end, request[_CALLER].team)
    return json_response(answer)


async def _invoice(request: web.Request) -> web.Response:
    customer = _customer(request, whole=True)
    if "month" in request.query:
        start, end = month_range(request.query["month"])
    else:
        start, end = _time(request, "from"), _time(request, "to")
    async with request.app[_POOL].acquire() as connection:
        catalogs = await load_catalogs(connection)
        return json_response(await queries.invoice(connection, customer, start, end, catalogs))


def _csv(rows: list[dict[str, Any]], header: bool) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=queries.EXPORT_COLUMNS, lineterminator="\n")
    if header:
        writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def _jsonl(rows: list[dict[str, Any]]) -> bytes:
    return b"".join(_encoder.encode(row) + b"\n" for row in rows)


async def _export(request: web.Request) -> web.StreamResponse:
    start, end = _time(request, "from"), _time(request, "to")
    customer = request.query.get("customer")
    if customer is not None:
        check_id("customer", customer)
    caller = request[_CALLER]
    if caller.customer is not None:
        if customer is None:
            raise InvalidInput("customer", f"is required with a token of {caller.scope}")
        require(caller, customer, "viewer")
    kind = request.query.get("format", "jsonl")
    if kind not in ("csv", "jsonl"):
        raise InvalidInput("format", f"must be csv or jsonl, got {kind!r}")
    if end <= start:
        raise InvalidInput("to", "must be after from")
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8" if kind == "csv" else "application/x-ndjson",
            "Content-Disposition": f'attachment; filename="usage.{kind}"',
        }
    )
    await response.prepare(request)
    chunk: list[dict[str, Any]] = []
    header = True

    async def flush() -> None:
        nonlocal header
        await response.write(_csv(chunk, header) if kind == "csv" else _jsonl(chunk))
        header = False
        chunk.clear()

    async with request.app[_POOL].acquire() as connection:
        async for row in queries.export_rows(connection, start, end, customer):
            chunk.append(row)
            if len(chunk) >= EXPORT_CHUNK_ROWS:
                await flush()
    if chunk or (kind == "csv" and header):
        await flush()
    await response.write_eof()
    return response


async def _status(request: web.Request) -> web.Response:
    caller = request[_CALLER]
    if caller.customer is not None:
        message = (
            f"this token is scoped to {caller.scope}; the ledger's status needs the ledger token"
        )
        raise PermissionDenied("Authorization", message)
    return json_response(await request.app[_STATUS]())


def _now_ms() -> int:
    return ms_of(datetime.now(UTC))


def ledger_app(pool: Pool, token: str, status: Status, check: TokenCheck) -> web.Application:
    """The query API on ``pool``; every route requires ``Authorization: Bearer <token>`` or
    a scoped admin token (``check`` reads it)."""
    app = web.Application(middlewares=[error_middleware, _authenticate])
    app[_POOL] = pool
    app[_TOKEN] = token.encode()
    app[_CHECK] = check
    app[_STATUS] = status
    app[MAX_BODY_BYTES] = 1024
    base = "/ledger/v1/customers/{customer}"
    app.router.add_get(f"{base}/balance", _balance)
    app.router.add_get(f"{base}/usage", _usage)
    app.router.add_get(f"{base}/invoice", _invoice)
    app.router.add_get(f"{base}/audit", _audit)
    app.router.add_get("/ledger/v1/export", _export)
    app.router.add_get("/ledger/v1/status", _status)
    return app
