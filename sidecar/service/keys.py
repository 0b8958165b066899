"""Proxy keys: bearer tokens for the proxy (sidecar/proxy), each bound to a subject that pays.

A key is ``<id>.<secret>``. Redis keeps only the SHA-256 of the whole token, with the subject
(store/layout.py, ``proxy_key_key``). The id is derived from the customer and the idempotency
key, so a retried issue finds the first key and answers ``already_issued`` (the secret was
shown once and is not stored). Lookups are cached; a revocation is published on the change
feed, and every sidecar drops the key at once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

import msgspec
from cachetools import TTLCache

from sidecar.customers import CustomerDirectory
from sidecar.errors import NotFound, PermissionDenied, Unauthenticated
from sidecar.store import layout
from sidecar.store.redis_store import RedisStore
from sidecar.times import format_time
from sidecar.wire import ProxyKey

__all__ = ["KeyRecord", "Keyring", "key_id", "key_view"]

KEY_PREFIX = "pk_"
CACHE_TTL_S = 30.0


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


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(KeyRecord).decode


def key_id(customer: str, idempotency_key: str) -> str:
    digest = hashlib.sha256(f"{customer}\0{idempotency_key}".encode()).hexdigest()
    return KEY_PREFIX + digest[:24]


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


class Keyring:
    """Issue, list, revoke and check proxy keys."""

    def __init__(self, store: RedisStore, customers: CustomerDirectory) -> None:
        self.store = store
        self.customers = customers
        self._cache: TTLCache[str, KeyRecord] = TTLCache(100_000, CACHE_TTL_S)
        customers.listeners.append(self._changed)

    def _changed(self, name: str) -> None:
        if name.startswith(layout.PROXY_KEY_CHANGED):
            self._cache.pop(name[len(layout.PROXY_KEY_CHANGED) :], None)
        elif not name:  # the feed was lost or resubscribed: nothing cached is known good
            self._cache.clear()

    async def issue(self, record: KeyRecord) -> tuple[KeyRecord, str | None]:
        """Store ``record`` (its ``hash`` filled here) and return it with its token; the
        first record and None when its id was issued before."""
        token = f"{record.id}.{secrets.token_urlsafe(32)}"
        issued = msgspec.structs.replace(record, hash=_hash(token))
        if await self.store.add_proxy_key(record.id, record.customer, _encode(issued)):
            return issued, token
        first = await self.store.proxy_key(record.id)
        assert first is not None  # ids are never deleted
        return _decode(first), None

    async def listed(self, customer: str) -> list[KeyRecord]:
        return [_decode(raw) for raw in await self.store.proxy_keys(customer)]

    async def revoke(self, customer: str, key: str, now_ms: int) -> tuple[KeyRecord, bool]:
        """The key revoked, and whether this call revoked it."""
        raw = await self.store.proxy_key(key)
        record = None if raw is None else _decode(raw)
        if record is None or record.customer != customer:
            raise NotFound("key_id", f"customer {customer!r} has no proxy key {key!r}")
        if record.revoked_ms is not None:
            return record, False
        revoked = msgspec.structs.replace(record, revoked_ms=now_ms)
        await self.store.replace_proxy_key(key, _encode(revoked))
        self._cache.pop(key, None)
        await self.store.publish(layout.CHANGES_CHANNEL, layout.PROXY_KEY_CHANGED + key)
        return revoked, True

    async def check(self, header: str) -> KeyRecord:
        """The key of an ``Authorization: Bearer <key>`` header; Unauthenticated when it is
        missing, PermissionDenied when unknown or revoked."""
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("Authorization", "send Authorization: Bearer <proxy key>")
        key = token.partition(".")[0]
        record = self._cache.get(key) if self.customers.trusted else None
        if record is None:
            raw = await self.store.proxy_key(key) if key.startswith(KEY_PREFIX) else None
            if raw is None:
                raise PermissionDenied("Authorization", "unknown proxy key")
            record = _decode(raw)
            self._cache[key] = record
        if not hmac.compare_digest(record.hash, _hash(token)):
            raise PermissionDenied("Authorization", "unknown proxy key")
        if record.revoked_ms is not None:
            raise PermissionDenied(
                "Authorization", f"proxy key {key} was revoked at {format_time(record.revoked_ms)}"
            )
        return record
