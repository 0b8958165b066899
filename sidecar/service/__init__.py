"""The application service: one async API under HTTP and gRPC alike.

Requests and responses are the wire types of docs/design.md ("Wire contract"). The service is
split by concept: hot-path ``decisions``, read ``views``, ``admin`` writes, over a shared
``context``; ``Service`` is all three on one context.
"""

from sidecar.service.admin import Admin
from sidecar.service.decisions import Decisions
from sidecar.service.views import Views

__all__ = ["Service"]


class Service(Decisions, Views, Admin):
    """check, reserve, commit, release, balance, budgets, and the admin operations."""
