"""Alert webhooks, signed as the Standard Webhooks specification says (``webhook-id``,
``webhook-timestamp``, ``webhook-signature: v1,<base64 HMAC-SHA256>``), delivered by the ledger
service, never by the hot path.

An alert ingested (writer.py) gets one delivery per enabled endpoint of its customer and of
the operator, in the same transaction. The dispatcher claims due deliveries (``FOR UPDATE SKIP
LOCKED``: any number of ledger pods), posts them, and logs every attempt. A delivery is retried
with exponential backoff until an endpoint answers 2xx: at least once, with the same
``webhook-id``, so a receiver drops repeats. An endpoint that fails DISABLE_AFTER_FAILURES
attempts in a row is disabled, logged and counted; ``creditgate ledger webhooks replay``
enables it again and sends what it missed.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import secrets
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import msgspec
from standardwebhooks import Webhook

from sidecar.engine.alerts import describe
from sidecar.environment import LIVE
from sidecar.errors import InvalidInput, NotFound
from sidecar.ledger.audit import record_audit
from sidecar.ledger.db import Connection, Pool
from sidecar.ledger.margins import MARGIN_EVENT, margin_data
from sidecar.ledger.metrics import LedgerMetrics
from sidecar.money import format_credits
from sidecar.times import format_time, ms_of

__all__ = [
    "DISABLE_AFTER_FAILURES",
    "Dispatcher",
    "alert_payload",
    "backoff_s",
    "check_endpoint",
    "enqueue_sql",
    "new_secret",
]

log = logging.getLogger(__name__)

DISABLE_AFTER_FAILURES = 10
"""Attempts failed in a row after which an endpoint is disabled."""
BACKOFF_MAX_S = 3600.0
ATTEMPT_TIMEOUT_S = 5.0
LEASE_S = 60
"""A claimed delivery is not claimed again for this long (its attempt runs meanwhile)."""
CLAIM_MAX = 20
EVENT_TYPE = "alert.threshold_crossed"
URL_MAX = 2000

enqueue_sql = (
    "INSERT INTO webhook_deliveries (alert_id, endpoint_id) "
    "SELECT a.event_id, e.id FROM {alerts} a JOIN webhook_endpoints e "
    "ON e.customer IS NULL OR e.customer = a.customer WHERE e.disabled_at IS NULL "
    "ON CONFLICT DO NOTHING"
)
"""Deliveries of newly ingested alerts (``{alerts}``: the batch's staging table)."""


def backoff_s(attempts: int, base_s: float) -> float:
    """Seconds before the next attempt after ``attempts`` failed ones: base, 2x, 4x, ..."""
    return float(min(base_s * 2 ** max(attempts - 1, 0), BACKOFF_MAX_S))


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def check_endpoint(url: str, secret: str | None) -> str:
    """The endpoint's signing secret (a new one when ``secret`` is None); InvalidInput naming
    ``url`` or ``secret`` when one is unusable."""
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput("url", "must be an http:// or https:// URL with a host")
    if len(url) > URL_MAX:
        raise InvalidInput("url", f"is {len(url)} characters; use at most {URL_MAX}")
    if secret is None:
        return new_secret()
    try:
        Webhook(secret)
        decoded = base64.b64decode(secret.removeprefix("whsec_") + "==", validate=False)
    except Exception:  # whatever the library refuses: the reason is the same
        decoded = b""
    if len(decoded) < 16:
        raise InvalidInput("secret", "must be whsec_ and base64 of at least 16 bytes; or omit it")
    return secret


def alert_payload(row: Any, now_ms: int, environment: str = LIVE) -> bytes:
    """The body of an alert's webhook: ``{type, timestamp, environment, data}``, as the
    specification's examples are shaped (and the environment it fired in); amounts in
    credits, exact. A margin alert (ledger/margins.py) is ``alert.margin_below``."""
    head = {"timestamp": format_time(now_ms), "environment": environment}
    if row["rule"].startswith("m"):
        return msgspec.json.encode({"type": MARGIN_EVENT, **head, "data": margin_data(row)})
    limit = row["limit_nanos"]
    data = {
        "alert_id": row["event_id"],
        "customer": row["customer"],
        "team": row["team"],
        "scope": row["scope"],
        "period": row["period"],
        "rule": describe(row["rule"])[0],
        "threshold": format_credits(row["threshold_nanos"]),
        "used": format_credits(row["used_nanos"]),
        "limit": None if limit is None else format_credits(limit),
        "mode": row["mode"],
        "reservation_id": row["reservation_id"],
        "at": format_time(ms_of(row["ts"])),
    }
    return msgspec.json.encode({"type": EVENT_TYPE, **head, "data": data})


_CLAIM = f"""
WITH due AS (
    SELECT d.alert_id, d.endpoint_id FROM webhook_deliveries d
    JOIN webhook_endpoints e ON e.id = d.endpoint_id
    WHERE d.delivered_at IS NULL AND d.next_at <= now() AND e.disabled_at IS NULL
    ORDER BY d.next_at LIMIT {CLAIM_MAX} FOR UPDATE OF d SKIP LOCKED
)
UPDATE webhook_deliveries d SET next_at = now() + interval '{LEASE_S} seconds',
    attempts = d.attempts + 1
FROM due, webhook_endpoints e, alerts a
WHERE d.alert_id = due.alert_id AND d.endpoint_id = due.endpoint_id
    AND e.id = d.endpoint_id AND a.event_id = d.alert_id
RETURNING d.attempts, e.id AS endpoint, e.url, e.secret, a.*
"""


class Dispatcher:
    """Claims due deliveries, posts them, records every attempt."""

    def __init__(
        self,
        pool: Pool,
        metrics: LedgerMetrics,
        *,
        backoff_base_s: float = 1.0,
        poll_s: float = 0.5,
        environment: str = LIVE,
    ) -> None:
        self.pool = pool
        self.environment = environment
        self.metrics = metrics
        self.backoff_base_s = backoff_base_s
        self.poll_s = poll_s
        self._http: aiohttp.ClientSession | None = None

    async def run(self, stop: asyncio.Event) -> None:
        timeout = aiohttp.ClientTimeout(total=ATTEMPT_TIMEOUT_S)
        async with aiohttp.ClientSession(timeout=timeout) as self._http:
            while not stop.is_set():
                try:
                    sent = await self.round()
                except Exception as error:  # the database went away: try again soon
                    log.warning("webhook round failed (%s: %s)", type(error).__name__, error)
                    sent = 0
                if not sent:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), self.poll_s)

    async def round(self) -> int:
        """One claim and its attempts; the number of attempts made."""
        async with self.pool.acquire() as connection:
            claimed = await connection.fetch(_CLAIM)
        await asyncio.gather(*(self._attempt(row) for row in claimed))
        return len(claimed)

    async def _attempt(self, row: Any) -> None:
        assert self._http is not None
        now = datetime.now(UTC)
        body = alert_payload(row, ms_of(now), self.environment)
        msg_id = row["event_id"]
        headers = {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Webhook(row["secret"]).sign(msg_id, now, body),
        }
        status: int | None = None
        error = ""
        try:
            async with self._http.post(row["url"], data=body, headers=headers) as response:
                status = response.status
                await response.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as failure:
            error = f"{type(failure).__name__}: {failure}"[:500]
        async with self.pool.acquire() as connection, connection.transaction():
            await self._record(connection, row, status, error)

    async def _record(
        self, connection: Connection, row: Any, status: int | None, error: str
    ) -> None:
        alert, endpoint, attempt = row["event_id"], row["endpoint"], row["attempts"]
        await connection.execute(
            "INSERT INTO webhook_attempts (alert_id, endpoint_id, attempt, status, error) "
            "VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            alert, endpoint, attempt, status, error,
        )  # fmt: skip
        delivered = status is not None and 200 <= status < 300
        self.metrics.webhook_attempts.labels("delivered" if delivered else "failed").inc()
        if delivered:
            await connection.execute(
                "UPDATE webhook_deliveries SET delivered_at = now() "
                "WHERE alert_id = $1 AND endpoint_id = $2",
                alert, endpoint,
            )  # fmt: skip
            await connection.execute(
                "UPDATE webhook_endpoints SET failures = 0 WHERE id = $1", endpoint
            )
            return
        wait = backoff_s(attempt, self.backoff_base_s)
        await connection.execute(
            "UPDATE webhook_deliveries SET next_at = now() + $3 * interval '1 second' "
            "WHERE alert_id = $1 AND endpoint_id = $2",
            alert, endpoint, wait,
        )  # fmt: skip
        failures = await connection.fetchval(
            "UPDATE webhook_endpoints SET failures = failures + 1 WHERE id = $1 RETURNING failures",
            endpoint,
        )
        if failures >= DISABLE_AFTER_FAILURES:
            reason = f"{failures} attempts failed in a row; last: {status or error}"
            disabled = await connection.fetchval(
                "UPDATE webhook_endpoints SET disabled_at = now(), disabled_reason = $2 "
                "WHERE id = $1 AND disabled_at IS NULL RETURNING id",
                endpoint, reason,
            )  # fmt: skip
            if disabled is not None:
                self.metrics.webhook_endpoints_disabled.inc()
                log.warning(
                    "webhook endpoint %s (%s) disabled: %s; "
                    "enable it with creditgate ledger webhooks replay --endpoint %s",
                    endpoint, row["url"], reason, endpoint,
                )  # fmt: skip


class Endpoint(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    customer: str | None
    """None: the operator's, which gets every customer's alerts."""
    url: str
    created_at: str
    failures: int
    disabled_at: str | None
    disabled_reason: str | None
    secret: str | None = None
    """Shown once, when registered."""


class Attempt(msgspec.Struct, frozen=True, kw_only=True):
    alert_id: str
    attempt: int
    at: str
    status: int | None
    error: str


def _endpoint(row: Any, secret: str | None = None) -> Endpoint:
    disabled = row["disabled_at"]
    return Endpoint(
        id=row["id"],
        customer=row["customer"],
        url=row["url"],
        created_at=format_time(ms_of(row["created_at"])),
        failures=row["failures"],
        disabled_at=None if disabled is None else format_time(ms_of(disabled)),
        disabled_reason=row["disabled_reason"],
        secret=secret,
    )


async def register(
    connection: Connection, customer: str | None, url: str, secret: str | None, actor: str
) -> Endpoint:
    secret = check_endpoint(url, secret)
    async with connection.transaction():
        row = await connection.fetchrow(
            "INSERT INTO webhook_endpoints (id, customer, url, secret) VALUES ($1, $2, $3, $4) "
            "RETURNING *",
            "wh_" + secrets.token_hex(8), customer, url, secret,
        )  # fmt: skip
        assert row is not None
        await record_audit(
            connection, customer, actor, "webhook.register", {"id": row["id"], "url": url}
        )
    return _endpoint(row, secret)


async def endpoints(connection: Connection, customer: str | None) -> list[Endpoint]:
    rows = await connection.fetch(
        "SELECT * FROM webhook_endpoints WHERE customer IS NOT DISTINCT FROM $1 "
        "ORDER BY created_at",
        customer,
    )
    return [_endpoint(row) for row in rows]


async def _owned(connection: Connection, customer: str | None, endpoint: str) -> Any:
    row = await connection.fetchrow(
        "SELECT * FROM webhook_endpoints WHERE id = $1 AND customer IS NOT DISTINCT FROM $2",
        endpoint, customer,
    )  # fmt: skip
    if row is None:
        owner = "the operator" if customer is None else f"customer {customer!r}"
        raise NotFound("webhook_id", f"{owner} has no webhook endpoint {endpoint!r}")
    return row


async def remove(
    connection: Connection, customer: str | None, endpoint: str, actor: str
) -> Endpoint:
    """Disable an endpoint for good (its log stays)."""
    async with connection.transaction():
        await _owned(connection, customer, endpoint)
        row = await connection.fetchrow(
            "UPDATE webhook_endpoints SET disabled_at = coalesce(disabled_at, now()), "
            "disabled_reason = 'removed' WHERE id = $1 RETURNING *",
            endpoint,
        )
        await record_audit(connection, customer, actor, "webhook.remove", {"id": endpoint})
    return _endpoint(row)


async def attempts(connection: Connection, customer: str | None, endpoint: str) -> list[Attempt]:
    """The delivery log of an endpoint, newest last (at most 1000 attempts)."""
    await _owned(connection, customer, endpoint)
    rows = await connection.fetch(
        "SELECT * FROM webhook_attempts WHERE endpoint_id = $1 ORDER BY at, attempt LIMIT 1000",
        endpoint,
    )
    return [
        Attempt(
            alert_id=r["alert_id"],
            attempt=r["attempt"],
            at=format_time(ms_of(r["at"])),
            status=r["status"],
            error=r["error"],
        )
        for r in rows
    ]


async def replay(connection: Connection, endpoint: str, alert: str | None) -> int:
    """Enable ``endpoint`` again and make its undelivered deliveries due now; with ``alert``,
    send that alert again (delivered or not, created if it never was). Returns deliveries
    due."""
    async with connection.transaction():
        found = await connection.execute(
            "UPDATE webhook_endpoints SET disabled_at = NULL, disabled_reason = NULL, "
            "failures = 0 WHERE id = $1",
            endpoint,
        )
        if found == "UPDATE 0":
            raise NotFound("endpoint", f"no webhook endpoint {endpoint!r}")
        if alert is not None:
            if await connection.fetchval("SELECT 1 FROM alerts WHERE event_id = $1", alert) is None:
                raise NotFound("alert", f"no alert {alert!r} in the ledger")
            await connection.execute(
                "INSERT INTO webhook_deliveries (alert_id, endpoint_id) VALUES ($1, $2) "
                "ON CONFLICT (alert_id, endpoint_id) DO UPDATE SET delivered_at = NULL, "
                "next_at = now()",
                alert, endpoint,
            )  # fmt: skip
            return 1
        status = await connection.execute(
            "UPDATE webhook_deliveries SET next_at = now() "
            "WHERE endpoint_id = $1 AND delivered_at IS NULL",
            endpoint,
        )
        return int(status.split()[-1])
