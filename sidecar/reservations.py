"""Reservation ids: ``r_<ULID>_<customer>``. Time-ordered, unique, and naming the customer, so
that a commit or release finds the customer's keys (and hash slot) from the id alone."""

from __future__ import annotations

import os
import re

from sidecar.errors import NotFound
from sidecar.ids import is_id

__all__ = ["customer_of", "new_reservation_id", "reserved_ms"]

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_ULID = re.compile(r"r_([0-9A-HJKMNP-TV-Z]{26})_")
# Crockford base 32 translated to Python's base-32 digits, so that int() reads a ULID in C.
_CROCKFORD_TO_BASE32 = str.maketrans(_CROCKFORD, "0123456789abcdefghijklmnopqrstuv")


def _ulid(now_ms: int) -> str:
    value = (now_ms << 80) | int.from_bytes(os.urandom(10), "big")
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def new_reservation_id(customer: str, now_ms: int) -> str:
    return f"r_{_ulid(now_ms)}_{customer}"


def customer_of(reservation_id: str) -> str:
    """The customer a reservation id belongs to; NotFound when it is not one of ours."""
    head = _ULID.match(reservation_id) if isinstance(reservation_id, str) else None
    customer = reservation_id[head.end() :] if head else ""
    if not is_id(customer):
        raise NotFound("reservation_id", f"no reservation {reservation_id!r}")
    return customer


def reserved_ms(reservation_id: str, default_ms: int) -> int:
    """When a hold was placed (the time in its ULID); ``default_ms`` for another kind of id."""
    head = _ULID.match(reservation_id)
    if head is None:
        return default_ms
    return int(head[1].translate(_CROCKFORD_TO_BASE32), 32) >> 80
