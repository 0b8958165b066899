"""Redis key names and reservation ids. Every key of a customer carries ``{c:<customer>}``."""

from __future__ import annotations

import os

from sidecar.errors import NotFound
from sidecar.ids import is_id

__all__ = ["customer_key", "customer_of", "idem_key", "new_reservation_id", "prefix"]

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_ULID_LENGTH = 26


def prefix(customer: str) -> str:
    return f"cg:{{c:{customer}}}"


def customer_key(customer: str) -> str:
    """KEYS[1] of every script; the scripts name the customer's other keys from it."""
    return f"{prefix(customer)}:customer"


def idem_key(customer: str, operation: str, key: str) -> str:
    return f"{prefix(customer)}:idem:{operation}:{key}"


def _ulid(now_ms: int) -> str:
    value = (now_ms << 80) | int.from_bytes(os.urandom(10), "big")
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def new_reservation_id(customer: str, now_ms: int) -> str:
    """``r_<ULID>_<customer>``: time-ordered, unique, and names the customer's hash tag."""
    return f"r_{_ulid(now_ms)}_{customer}"


def customer_of(reservation_id: str) -> str:
    """The customer a reservation id belongs to; NotFound when it is not one of ours."""
    head, ulid, customer = reservation_id[:2], reservation_id[2:28], reservation_id[29:]
    valid = (
        isinstance(reservation_id, str)
        and head == "r_"
        and len(ulid) == _ULID_LENGTH
        and all(ch in _CROCKFORD for ch in ulid)
        and reservation_id[28:29] == "_"
        and is_id(customer)
    )
    if not valid:
        raise NotFound("reservation_id", f"no reservation {reservation_id!r}")
    return customer
