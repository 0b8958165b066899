"""Credentials issued by the operator: proxy keys (bearer tokens of the proxy, sidecar/proxy,
each bound to a subject that pays) and scoped admin tokens (an end customer's admins and
viewers, access.py).

A credential is ``<id>.<secret>``. Redis keeps only the SHA-256 of the whole token, with what
it is bound to (store/layout.py, ``credential_key``). The id is derived from the customer and
the idempotency key, so a retried issue finds the first one and answers ``already_issued``
(the secret was shown once and is not stored). Lookups are cached; a revocation is published
on the change feed, and every sidecar drops the credential at once.

Each record, once issued and once revoked, is also sent to the ledger (a ``credential`` event
on the customer's stream; again on a retry, the ledger keeps one per state), so that a Redis
that lost its state gets it back from ``creditgate ledger rebuild`` (ledger/rebuild.py):
applications keep their keys, and a revoked one stays revoked.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from typing import Any, Literal

import msgspec
from cachetools import TTLCache

from sidecar.access import Caller
from sidecar.customers import CustomerDirectory
from sidecar.errors import NotFound, StoreError, Unauthenticated
from sidecar.store import layout
from sidecar.store.redis_store import RedisStore
from sidecar.times import format_time
from sidecar.wire import AdminToken, ProxyKey

__all__ = [
    "ADMIN_TOKENS",
    "CREDENTIAL_EVENT",
    "PROXY_KEYS",
    "KeyRecord",
    "Keyring",
    "Kind",
    "caller_of",
    "check_uncached",
    "key_id",
    "key_view",
    "token_view",
    "verify",
]

log = logging.getLogger(__name__)

CACHE_TTL_S = 30.0
CREDENTIAL_EVENT = "credential"
"""The kind of the stream event that carries a record to the ledger (ledger/events.py)."""


class Kind(msgspec.Struct, frozen=True):
    namespace: str
    """Where the records live (store/layout.py)."""
    prefix: str
    """Of every id: which kind a token is, at a glance."""
    what: str
    """For errors: ``proxy key``, ``admin token``."""
    id_field: str
    """The path parameter that names one, for errors."""


PROXY_KEYS = Kind(layout.PROXY_KEYS, "pk_", "proxy key", "key_id")
ADMIN_TOKENS = Kind(layout.ADMIN_TOKENS, "at_", "admin token", "token_id")


class KeyRecord(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    customer: str
    label: str
    created_ms: int
    hash: str
    """SHA-256 of the whole token, hex."""
    team: str | None = None
    user: str | None = None
    agent: str | None = None
    revoked_ms: int | None = None
    role: str | None = None
    """An admin token's role (access.py); None for a proxy key."""
    expires_ms: int | None = None


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(KeyRecord).decode


def key_id(kind: Kind, customer: str, idempotency_key: str) -> str:
    digest = hashlib.sha256(f"{customer}\0{idempotency_key}".encode()).hexdigest()
    return kind.prefix + digest[:24]


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def key_view(record: KeyRecord) -> ProxyKey:
    return ProxyKey(
        id=record.id,
        customer=record.customer,
        label=record.label,
        created_at=format_time(record.created_ms),
        team=record.team,
        user=record.user,
        agent=record.agent,
        revoked_at=None if record.revoked_ms is None else format_time(record.revoked_ms),
    )


def token_view(record: KeyRecord) -> AdminToken:
    return AdminToken(
        id=record.id,
        customer=record.customer,
        role="admin" if record.role == "admin" else "viewer",
        label=record.label,
        created_at=format_time(record.created_ms),
        team=record.team,
        expires_at=None if record.expires_ms is None else format_time(record.expires_ms),
        revoked_at=None if record.revoked_ms is None else format_time(record.revoked_ms),
    )


def caller_of(record: KeyRecord) -> Caller:
    """What an admin token may do (access.py)."""
    role: Literal["admin", "viewer"] = "admin" if record.role == "admin" else "viewer"
    return Caller(actor=record.id, role=role, customer=record.customer, team=record.team)


def verify(kind: Kind, raw: bytes | None, token: str, now_ms: int) -> KeyRecord:
    """The record ``raw`` of ``token`` once it is known good: Unauthenticated when unknown,
    revoked or expired."""
    record = None if raw is None else _decode(raw)
    if record is None or not hmac.compare_digest(record.hash, _hash(token)):
        raise Unauthenticated("Authorization", f"unknown {kind.what}")
    if record.revoked_ms is not None:
        raise Unauthenticated(
            "Authorization",
            f"{kind.what} {record.id} was revoked at {format_time(record.revoked_ms)}",
        )
    if record.expires_ms is not None and record.expires_ms <= now_ms:
        when = format_time(record.expires_ms)
        raise Unauthenticated("Authorization", f"{kind.what} {record.id} expired at {when}")
    return record


def token_of(kind: Kind, header: str) -> str:
    """The token of an ``Authorization: Bearer <token>`` header."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("Authorization", f"send Authorization: Bearer <{kind.what}>")
    return token


async def check_uncached(
    client: Any, keys: layout.Layout, kind: Kind, header: str, now_ms: int
) -> KeyRecord:
    """``Keyring.check`` for a reader without a cache or a store (the ledger's query API),
    on a plain Redis client: a revocation applies to the next request."""
    token = token_of(kind, header)
    key = token.partition(".")[0]
    raw = (
        await client.get(keys.credential_key(kind.namespace, key))
        if key.startswith(kind.prefix)
        else None
    )
    return verify(kind, raw, token, now_ms)


class Keyring:
    """Issue, list, revoke and check the credentials of one kind."""

    def __init__(self, store: RedisStore, customers: CustomerDirectory, kind: Kind) -> None:
        self.store = store
        self.customers = customers
        self.kind = kind
        self._cache: TTLCache[str, bytes] = TTLCache(100_000, CACHE_TTL_S)
        self._changed_prefix = kind.namespace + ":"
        customers.listeners.append(self._changed)

    def _changed(self, name: str) -> None:
        if name.startswith(self._changed_prefix):
            self._cache.pop(name[len(self._changed_prefix) :], None)
        elif not name:  # the feed was lost or resubscribed: nothing cached is known good
            self._cache.clear()

    async def issue(self, record: KeyRecord) -> tuple[KeyRecord, str | None]:
        """Store ``record`` (its ``hash`` filled here) and return it with its token; the
        first record and None when its id was issued before."""
        token = f"{record.id}.{secrets.token_urlsafe(32)}"
        issued = msgspec.structs.replace(record, hash=_hash(token))
        namespace = self.kind.namespace
        if await self.store.add_credential(namespace, record.id, record.customer, _encode(issued)):
            await self._ship(issued, must=False)  # the secret is shown now or never
            return issued, token
        first = await self.store.credential(namespace, record.id)
        assert first is not None  # ids are never deleted
        await self._ship(_decode(first))  # an issue interrupted before it shipped completes
        return _decode(first), None

    async def _ship(self, record: KeyRecord, *, must: bool = True) -> None:
        """Send ``record`` to the ledger, in the state it is in. Not ``must``: a failure is
        logged, not raised (a retried issue or the revoke ships it)."""
        revoked = record.revoked_ms is not None
        fields = {
            "kind": CREDENTIAL_EVENT,
            "event_id": f"cr_{record.id}_{'revoked' if revoked else 'issued'}",
            "customer": record.customer,
            "namespace": self.kind.namespace,
            "record": _encode(record).decode(),
            "ts": str(record.revoked_ms if revoked else record.created_ms),
        }
        try:
            await self.store.append_event(record.customer, fields)
        except StoreError as error:
            if must:
                raise
            log.warning("%s %s is not in the ledger yet: %s", self.kind.what, record.id, error)

    async def listed(self, customer: str) -> list[KeyRecord]:
        return [_decode(raw) for raw in await self.store.credentials(self.kind.namespace, customer)]

    async def find(self, customer: str, credential_id: str) -> KeyRecord:
        raw = await self.store.credential(self.kind.namespace, credential_id)
        record = None if raw is None else _decode(raw)
        if record is None or record.customer != customer:
            what = self.kind.what
            raise NotFound(
                self.kind.id_field, f"customer {customer!r} has no {what} {credential_id!r}"
            )
        return record

    async def revoke(self, record: KeyRecord, now_ms: int) -> tuple[KeyRecord, bool]:
        """``record`` revoked, and whether this call revoked it. Every sidecar is told first,
        then the ledger; a retry (already revoked) repeats both, to complete a revoke that was
        interrupted."""
        done = record.revoked_ms is not None
        revoked = record if done else msgspec.structs.replace(record, revoked_ms=now_ms)
        if not done:
            await self.store.replace_credential(self.kind.namespace, record.id, _encode(revoked))
        self._cache.pop(record.id, None)
        await self.store.publish(
            self.store.layout.changes_channel, self._changed_prefix + record.id
        )
        await self._ship(revoked)
        return revoked, not done

    async def check(self, header: str, now_ms: int) -> KeyRecord:
        """The credential of an ``Authorization: Bearer <token>`` header; Unauthenticated
        when it is missing, unknown, revoked or expired."""
        token = token_of(self.kind, header)
        key = token.partition(".")[0]
        raw = self._cache.get(key) if self.customers.trusted else None
        if raw is None and key.startswith(self.kind.prefix):
            raw = await self.store.credential(self.kind.namespace, key)
            if raw is not None:
                self._cache[key] = raw
        return verify(self.kind, raw, token, now_ms)
