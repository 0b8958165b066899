"""The few typed errors Creditgate raises; transports map ``code`` to a status in one place each.

Every request error names the field at fault and says how to fix it; none of them has moved
anything.
"""

from __future__ import annotations

__all__ = [
    "CatalogError",
    "Conflict",
    "CreditgateError",
    "InvalidInput",
    "NotFound",
    "OutcomeUnknown",
    "PermissionDenied",
    "RequestError",
    "SettingsError",
    "StoreError",
    "Unauthenticated",
]


class CreditgateError(Exception):
    """Base of every error Creditgate raises on purpose."""


class SettingsError(CreditgateError):
    """A setting is missing, malformed or disagrees with the deployment; the message names
    the flag and its variable. Commands exit 2 on it."""


class RequestError(CreditgateError):
    """An error answered to a caller: a closed ``code``, the ``field`` at fault, a message."""

    code = "invalid_request"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message


class InvalidInput(RequestError):
    """A request field is missing, malformed or out of range; nothing was moved."""

    code = "invalid_request"


class NotFound(RequestError):
    """The named object (a reservation, a customer) does not exist."""

    code = "not_found"


class Unauthenticated(RequestError):
    """No credentials were sent."""

    code = "unauthenticated"


class PermissionDenied(RequestError):
    """Credentials were sent and are wrong."""

    code = "permission_denied"


class Conflict(RequestError):
    """The request was valid when it was made and the state it counted on has changed since
    (a proposal diffed against a catalog no longer in force); nothing was moved."""

    code = "conflict"


class InternalError(RequestError):
    """A bug: answered without its detail, which is logged with its trace where it was caught."""

    code = "internal"

    def __init__(self) -> None:
        super().__init__("", "internal error; it is logged")


class StoreError(RequestError):
    """Redis could not be reached or answered with an error; the one wrapper for driver errors."""

    code = "store_unavailable"

    def __init__(self, message: str, *, unknown: bool = False) -> None:
        super().__init__("", message)
        self.unknown = unknown
        """The command was sent and no answer came: it may have run."""


class OutcomeUnknown(RequestError):
    """A commit or release was sent and Redis did not answer in time: it may have applied. The
    sidecar sends it again until Redis answers; a retry with the same reservation id gets
    the first answer."""

    code = "outcome_unknown"

    def __init__(self, message: str) -> None:
        super().__init__("reservation_id", message)

    @classmethod
    def of(cls, operation: str) -> OutcomeUnknown:
        return cls(
            f"the {operation} was sent and Redis did not answer in time, so it may have "
            "applied; retry with the same reservation_id: the answer says what happened"
        )


class CatalogError(CreditgateError):
    """A catalog file is invalid: names the file, the path inside it and the fix."""

    def __init__(self, file: str, path: str, problem: str, fix: str) -> None:
        super().__init__(f"{file}: {path}: {problem} (fix: {fix})")
        self.file = file
        self.path = path
        self.problem = problem
        self.fix = fix
