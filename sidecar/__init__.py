"""Creditgate: the enforcement layer in the request path of an AI product.

A per-pod sidecar decides allow or deny before each model call, holds the worst-case cost
atomically across every budget, settles the actual usage after the call, and streams every
unit of consumption, fully attributed, toward an append-only ledger.
"""

from sidecar.errors import CatalogError, CreditgateError, InvalidInput, NotFound, StoreError
from sidecar.service import Service

__all__ = ["CatalogError", "CreditgateError", "InvalidInput", "NotFound", "Service", "StoreError"]
__version__ = "0.1.0"
