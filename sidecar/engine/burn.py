"""Burn order of credit buckets: priority, then earliest expiry, then oldest grant.

The order is encoded once, in the bucket's sort key; the store keeps keys in a sorted set and
burns them in lexicographic order, so the key *is* the order.
"""

from __future__ import annotations

__all__ = ["NO_EXPIRY_MS", "burn_key", "parse_burn_key"]

NO_EXPIRY_MS = 10**15 - 1
"""Sorts after every real expiry (year 33658)."""


def burn_key(
    priority: int, expires_at_ms: int | None, created_ms: int, grant_id: str, credit_type: str
) -> str:
    """Sort key of a bucket: fixed-width numbers so that string order is burn order."""
    expiry = NO_EXPIRY_MS if expires_at_ms is None else expires_at_ms
    return f"{priority:06d}|{expiry:015d}|{created_ms:015d}|{credit_type}|{grant_id}"


def parse_burn_key(key: str) -> tuple[int, int | None, int, str, str]:
    """(priority, expires_at_ms or None, created_ms, credit_type, grant_id) of a burn key."""
    priority, expiry, created, credit_type, grant_id = key.split("|", 4)
    expires_at_ms = None if int(expiry) == NO_EXPIRY_MS else int(expiry)
    return int(priority), expires_at_ms, int(created), credit_type, grant_id
