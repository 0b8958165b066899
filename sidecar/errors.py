"""The few typed errors Creditgate raises; transports map them to status codes in one place."""

from __future__ import annotations

__all__ = ["CatalogError", "CreditgateError", "InvalidInput", "NotFound", "StoreError"]


class CreditgateError(Exception):
    """Base of every error Creditgate raises on purpose."""


class InvalidInput(CreditgateError):
    """A request field is missing, malformed or out of range; nothing was moved."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class NotFound(CreditgateError):
    """The named object (a reservation, a customer) does not exist."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class StoreError(CreditgateError):
    """Redis could not be reached or answered with an error; the one wrapper for driver errors."""


class CatalogError(CreditgateError):
    """A catalog file is invalid: names the file, the path inside it and the fix."""

    def __init__(self, file: str, path: str, problem: str, fix: str) -> None:
        super().__init__(f"{file}: {path}: {problem} (fix: {fix})")
        self.file = file
        self.path = path
        self.problem = problem
        self.fix = fix
