"""The ledger's query API over HTTP (aiohttp), bearer-token protected. Thin: parse, query, answer.

``GET /ledger/v1/customers/{customer}/balance[?at=]``
``GET /ledger/v1/customers/{customer}/usage?from=&to=[&group_by=team,agent][&bucket=hour|day]``
``GET /ledger/v1/customers/{customer}/invoice?month=2026-11`` (or ``?from=&to=``)
``GET /ledger/v1/customers/{customer}/audit?from=&to=``: admin changes and who made them.
``GET /ledger/v1/customers/{customer}/alerts?from=&to=``: thresholds crossed.
``POST|GET /ledger/v1/customers/{customer}/webhooks``, ``DELETE .../webhooks/{id}``,
``GET .../webhooks/{id}/deliveries``: alert endpoints (ledger/webhooks.py) and their log;
``/ledger/v1/webhooks...`` the same for the operator's, which get every customer's alerts.
``GET /ledger/v1/export?from=&to=&format=csv|jsonl[&customer=]``
``GET /ledger/v1/customers/{customer}/budgets[?at=]``: budgets in force and their use.
``POST /ledger/v1/customers/{customer}/refunds`` and ``.../adjustments``: corrections
(ledger/corrections.py), the operator's.
``GET /ledger/v1/status``: ingest counters and the stream lag.
``/ledger/v1/pricing/...``: catalog proposals and their approval (ledger/pricing_http.py).
``GET /console?customer=[&group_by=]``: the usage console (ledger/console.py), in a browser;
``GET /console/login?token=`` keeps the token in a cookie and opens it.
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
from urllib.parse import quote

import msgspec
from aiohttp import web

from sidecar.access import Caller, Need, require
from sidecar.auth import TokenCheck, authenticate
from sidecar.catalog.model import Catalog
from sidecar.engine.alerts import describe
from sidecar.environment import LIVE
from sidecar.errors import InvalidInput, PermissionDenied
from sidecar.http.codec import decode, json_response
from sidecar.http.errors import Handler, error_middleware
from sidecar.http.keys import MAX_BODY_BYTES
from sidecar.ids import check_id
from sidecar.ledger import corrections, queries, webhooks
from sidecar.ledger.console import GROUPS, render_console
from sidecar.ledger.db import Connection, Pool, load_catalogs
from sidecar.ledger.pricing_http import PRICING, pricing_app
from sidecar.ledger.settings import LEDGER_MAX_BYTES
from sidecar.ledger.wire import month_range
from sidecar.text import Text, check_text
from sidecar.times import ms_of, parse_time

__all__ = ["Status", "ledger_app"]

Status = Callable[[], Awaitable[Any]]
_POOL: web.AppKey[Pool] = web.AppKey("pool")
_TOKEN = web.AppKey("token", bytes)
_CHECK: web.AppKey[TokenCheck] = web.AppKey("check")
_CALLER = web.RequestKey("caller", Caller)
_CATALOG: web.AppKey[Callable[[], Catalog]] = web.AppKey("catalog")
_CORRECTIONS = web.AppKey("corrections", corrections.Corrections)
_ENVIRONMENT = web.AppKey("environment", str)
CONSOLE = "/console"
CONSOLE_LOGIN = "/console/login"
COOKIE = "creditgate_token"
CONSOLE_DAYS = 30
"""The console shows this many days of usage, alerts and audit."""
_STATUS: web.AppKey[Status] = web.AppKey("status")
EXPORT_CHUNK_ROWS = 500
_BUCKETS: dict[str, queries.Bucket] = {"hour": "hour", "day": "day"}
_encoder = msgspec.json.Encoder()


@web.middleware
async def _authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path == CONSOLE_LOGIN:
        return await handler(request)  # it checks the token it is given
    if request.path.startswith(PRICING + "/"):
        return await handler(request)  # its own tokens (ledger/pricing_http.py)
    header = request.headers.get("Authorization", "")
    if not header and request.path == CONSOLE and COOKIE in request.cookies:
        header = f"Bearer {request.cookies[COOKIE]}"  # the console's page, in a browser
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
    return json_response(_seen_by(request[_CALLER], answer))


def _in_range(query: Callable[[Connection, str, int, int, str | None], Awaitable[Any]]) -> Any:
    """A handler of ``?from=&to=`` over ``query``, within the caller's team if it has one."""

    async def handler(request: web.Request) -> web.Response:
        customer = _customer(request)
        start, end = _time(request, "from"), _time(request, "to")
        async with request.app[_POOL].acquire() as connection:
            answer = await query(connection, customer, start, end, request[_CALLER].team)
        return json_response(answer)

    return handler


class _Register(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    url: Text
    secret: Text | None = None
    """``whsec_<base64>``; omitted: a new one, shown once in the answer."""


def _owner(request: web.Request, need: Need) -> str | None:
    """The customer whose endpoints the path names (None: the operator's), once the caller
    may ``need`` on it."""
    if "customer" not in request.match_info:
        _operator_only(request, "the operator's endpoints")
        return None
    customer = check_id("customer", request.match_info["customer"])
    require(request[_CALLER], customer, need)
    return customer


def _operator_only(request: web.Request, what: str) -> None:
    caller = request[_CALLER]
    if caller.customer is not None:
        message = f"this token is scoped to {caller.scope}; {what} needs the ledger token"
        raise PermissionDenied("Authorization", message)


async def _register(request: web.Request) -> web.Response:
    owner = _owner(request, "admin")
    body = decode(await request.read(), _Register)
    async with request.app[_POOL].acquire() as connection:
        endpoint = await webhooks.register(
            connection, owner, body.url, body.secret, request[_CALLER].actor
        )
    return json_response(endpoint)


async def _endpoints(request: web.Request) -> web.Response:
    owner = _owner(request, "viewer")
    async with request.app[_POOL].acquire() as connection:
        return json_response({"endpoints": await webhooks.endpoints(connection, owner)})


async def _remove(request: web.Request) -> web.Response:
    owner = _owner(request, "admin")
    async with request.app[_POOL].acquire() as connection:
        endpoint = await webhooks.remove(
            connection, owner, check_text("id", request.match_info["id"]), request[_CALLER].actor
        )
    return json_response(endpoint)


async def _deliveries(request: web.Request) -> web.Response:
    owner = _owner(request, "viewer")
    async with request.app[_POOL].acquire() as connection:
        log = await webhooks.attempts(connection, owner, check_text("id", request.match_info["id"]))
    return json_response({"attempts": log})


async def _refund(request: web.Request) -> web.Response:
    body = decode(await request.read(), corrections.RefundRequest)
    corrector = request.app[_CORRECTIONS]
    customer = request.match_info["customer"]
    return json_response(await corrector.refund(customer, body, request[_CALLER]))


async def _adjust(request: web.Request) -> web.Response:
    body = decode(await request.read(), corrections.AdjustRequest)
    corrector = request.app[_CORRECTIONS]
    customer = request.match_info["customer"]
    return json_response(await corrector.adjust(customer, body, request[_CALLER]))


async def _invoice(request: web.Request) -> web.Response:
    customer = _customer(request, whole=True)
    if "month" in request.query:
        start, end = month_range(request.query["month"])
    else:
        start, end = _time(request, "from"), _time(request, "to")
    async with request.app[_POOL].acquire() as connection:
        catalogs = await load_catalogs(connection)
        current = request.app[_CATALOG]()
        answer = await queries.invoice(connection, customer, start, end, catalogs, current)
        return json_response(_seen_by(request[_CALLER], answer))


OPERATOR_FIELDS = frozenset({"serve_cost", "margin"})
"""What only the operator sees: what serving the calls cost us, and the margin on them."""


def _hidden(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _hidden(v) for k, v in value.items() if k not in OPERATOR_FIELDS}
    if isinstance(value, list):
        return [_hidden(v) for v in value]
    return value


def _seen_by(caller: Caller, answer: Any) -> Any:
    """``answer`` as ``caller`` may read it: a scoped token's holder (the end customer's
    admin) never sees the cost of serve or the margin."""
    return answer if caller.customer is None else _hidden(msgspec.to_builtins(answer))


def _csv(rows: list[dict[str, Any]], header: bool, columns: list[str]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
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
    private = caller.customer is None
    columns = [c for c in queries.EXPORT_COLUMNS if private or c not in OPERATOR_FIELDS]

    async def flush() -> None:
        nonlocal header
        await response.write(_csv(chunk, header, columns) if kind == "csv" else _jsonl(chunk))
        header = False
        chunk.clear()

    async with request.app[_POOL].acquire() as connection:
        rows = queries.export_rows(connection, start, end, customer, request.app[_ENVIRONMENT])
        async for row in rows:
            chunk.append(_seen_by(caller, row))
            if len(chunk) >= EXPORT_CHUNK_ROWS:
                await flush()
    if chunk or (kind == "csv" and header):
        await flush()
    await response.write_eof()
    return response


async def _status(request: web.Request) -> web.Response:
    _operator_only(request, "the ledger's status")
    return json_response(await request.app[_STATUS]())


def _now_ms() -> int:
    return ms_of(datetime.now(UTC))


async def _login(request: web.Request) -> web.StreamResponse:
    """Check ``?token=`` as the API would, keep it in an HttpOnly cookie of the console's path
    only, and send the browser on to the page (the token leaves the address bar)."""
    token = request.query.get("token", "")
    caller = await authenticate(
        f"Bearer {token}", request.app[_TOKEN], request.app[_CHECK], _now_ms(),
        field="token", what="ledger token or scoped admin token",
    )  # fmt: skip
    customer = caller.customer or request.query.get("customer", "")
    response = web.Response(
        status=303, headers={"Location": f"{CONSOLE}?customer={quote(customer)}"}
    )
    response.set_cookie(COOKIE, token, path=CONSOLE, httponly=True, samesite="Strict")
    return response


async def _console(request: web.Request) -> web.Response:
    caller = request[_CALLER]
    customer = request.query.get("customer") or caller.customer
    if not customer:
        raise InvalidInput("customer", "is required: /console?customer=<id>")
    check_id("customer", customer)
    require(caller, customer, "viewer", team=caller.team)
    group = request.query.get("group_by", "team")
    if group not in GROUPS:
        raise InvalidInput("group_by", f"must be one of {', '.join(GROUPS)}")
    now = _now_ms()
    start = now - CONSOLE_DAYS * 86_400_000
    month = month_range(datetime.fromtimestamp(now / 1000, UTC).strftime("%Y-%m"))
    team = caller.team
    async with request.app[_POOL].acquire() as connection:
        balance = await queries.balance(connection, customer, now)
        usage = await queries.usage(connection, customer, start, now + 1, [group], "day", team)
        budgets = await queries.budgets(connection, customer, now, team)
        alerts = await queries.alerts(connection, customer, start, now + 1, team)
        audit = await queries.audit(connection, customer, start, now + 1, team)
        invoice = None
        if team is None:
            catalogs = await load_catalogs(connection)
            invoice = await queries.invoice(
                connection, customer, *month, catalogs, request.app[_CATALOG]()
            )
        plan = await connection.fetchval(
            "SELECT plan FROM customer_changes WHERE customer = $1 ORDER BY ts DESC LIMIT 1",
            customer,
        )
    catalog = request.app[_CATALOG]()
    rule = catalog.plans[plan].alert_budgets if plan in catalog.plans else None
    page = render_console(
        caller, group, balance, usage, budgets, alerts, audit, invoice,
        describe(rule) if rule else [],
    )  # fmt: skip
    return web.Response(text=page, content_type="text/html", headers={"Cache-Control": "no-store"})


async def _budgets(request: web.Request) -> web.Response:
    customer = _customer(request)
    at = parse_time("at", request.query["at"]) if "at" in request.query else _now_ms()
    async with request.app[_POOL].acquire() as connection:
        answer = await queries.budgets(connection, customer, at, request[_CALLER].team)
    return json_response(answer)


def ledger_app(
    pool: Pool,
    token: str,
    status: Status,
    check: TokenCheck,
    catalog: Callable[[], Catalog],
    corrector: corrections.Corrections,
    catalog_path: str,
    environment: str = LIVE,
) -> web.Application:
    """The query API on ``pool``; every route requires ``Authorization: Bearer <token>`` or
    a scoped admin token (``check`` reads it)."""
    app = web.Application(
        middlewares=[error_middleware, _authenticate], client_max_size=LEDGER_MAX_BYTES
    )
    app[_POOL] = pool
    app[_TOKEN] = token.encode()
    app[_CHECK] = check
    app[_CATALOG] = catalog
    app[_CORRECTIONS] = corrector
    app[_STATUS] = status
    app[MAX_BODY_BYTES] = LEDGER_MAX_BYTES
    app[_ENVIRONMENT] = environment
    base = "/ledger/v1/customers/{customer}"
    app.router.add_get(f"{base}/balance", _balance)
    app.router.add_get(f"{base}/usage", _usage)
    app.router.add_get(f"{base}/invoice", _invoice)
    app.router.add_get(f"{base}/audit", _in_range(queries.audit))
    app.router.add_get(f"{base}/alerts", _in_range(queries.alerts))
    app.router.add_get(f"{base}/budgets", _budgets)
    app.router.add_post(f"{base}/refunds", _refund)
    app.router.add_post(f"{base}/adjustments", _adjust)
    app.router.add_get(CONSOLE, _console)
    app.router.add_get(CONSOLE_LOGIN, _login)
    for owner in (base, "/ledger/v1"):
        app.router.add_post(f"{owner}/webhooks", _register)
        app.router.add_get(f"{owner}/webhooks", _endpoints)
        app.router.add_delete(f"{owner}/webhooks/{{id}}", _remove)
        app.router.add_get(f"{owner}/webhooks/{{id}}/deliveries", _deliveries)
    app.router.add_get("/ledger/v1/export", _export)
    app.router.add_get("/ledger/v1/status", _status)
    app.add_subapp(PRICING, pricing_app(pool, token, catalog_path))
    return app
