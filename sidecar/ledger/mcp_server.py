"""``creditgate mcp``: the pricing primitives as MCP tools for agents (the ``mcp`` SDK, over
stdio), each a call of the ledger's pricing API (ledger/pricing_http.py) with the agent's own
pricing token.

There is no tool that approves or rolls back: an agent proposes, a person approves
(``ACTIONS`` in ledger/proposals.py). The token is the agent's, so the ledger refuses an
approval even if a tool asked for one.
"""

from __future__ import annotations

import os
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from sidecar.ledger.pricing_client import PricingClient, PricingError
from sidecar.settings import SettingsError

__all__ = ["TOOLS", "pricing_server", "run"]

TOOLS = (
    "read_catalog", "diff_catalog", "simulate", "read_margin", "propose", "list_proposals",
    "get_proposal", "list_actions",
)  # fmt: skip


class _Ledger:
    """The pricing client, its errors raised as the tool's error (status, code, field and
    message), which the agent reads."""

    def __init__(self, url: str, token: str) -> None:
        self._client = PricingClient(url, token)

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        try:
            return await self._client.call(method, path, body)
        except PricingError as error:
            raise ToolError(str(error)) from None


def pricing_server(url: str, token: str) -> MCPServer:
    """The MCP server over the ledger at ``url``, acting with pricing token ``token``."""
    ledger = _Ledger(url, token)
    server = MCPServer(
        "creditgate-pricing",
        instructions="Read, diff and simulate Creditgate catalogs on real usage, and propose "
        "them with a rationale. A person approves a proposal; no tool here can.",
    )

    @server.tool()
    async def read_catalog() -> dict[str, Any]:
        """The catalog file in force (YAML text) and its version."""
        answer: dict[str, Any] = await ledger.call("GET", "/catalog")
        return answer

    @server.tool()
    async def diff_catalog(catalog: str) -> dict[str, Any]:
        """What a complete catalog file (YAML text) changes from the one in force: prices old
        -> new, models, plans, limits, grants."""
        answer: dict[str, Any] = await ledger.call("POST", "/diff", {"catalog": catalog})
        return answer

    @server.tool()
    async def simulate(
        catalog: str, start: str | None = None, end: str | None = None
    ) -> dict[str, Any]:
        """Replay the real calls of [start, end) (RFC 3339; default the last 30 days) under a
        catalog: revenue, cost of serve and margin before and after per plan, customer and
        model, and the calls its limits would have denied. Read-only."""
        body = {"catalog": catalog, "from": start, "to": end}
        answer: dict[str, Any] = await ledger.call(
            "POST", "/simulate", {k: v for k, v in body.items() if v}
        )
        return answer

    @server.tool()
    async def read_margin(start: str | None = None, end: str | None = None) -> dict[str, Any]:
        """Revenue, cost of serve and margin of [start, end) under the catalog in force."""
        query = "&".join(f"{k}={v}" for k, v in (("from", start), ("to", end)) if v)
        answer: dict[str, Any] = await ledger.call(
            "GET", "/margin" + (f"?{query}" if query else "")
        )
        return answer

    @server.tool()
    async def propose(
        catalog: str,
        rationale: str,
        idempotency_key: str,
        start: str | None = None,
        end: str | None = None,
    ) -> dict[str, Any]:
        """Submit a complete catalog with a rationale: it is validated, diffed and simulated
        and stored as a proposal. It goes live only when a person approves it."""
        body = {"catalog": catalog, "rationale": rationale, "idempotency_key": idempotency_key,
                "from": start, "to": end}  # fmt: skip
        answer: dict[str, Any] = await ledger.call(
            "POST", "/proposals", {k: v for k, v in body.items() if v is not None}
        )
        return answer

    @server.tool()
    async def list_proposals() -> dict[str, Any]:
        """The latest proposals, with their diff, simulation and status."""
        answer: dict[str, Any] = await ledger.call("GET", "/proposals")
        return answer

    @server.tool()
    async def get_proposal(proposal_id: str) -> dict[str, Any]:
        """One proposal, with its diff, simulation and status."""
        answer: dict[str, Any] = await ledger.call("GET", f"/proposals/{proposal_id}")
        return answer

    @server.tool()
    async def list_actions() -> dict[str, Any]:
        """Everything each role may do on the pricing API, and whether it needs approval."""
        answer: dict[str, Any] = await ledger.call("GET", "/actions")
        return answer

    return server


def run() -> None:
    """Serve over stdio; the ledger and the token come from the environment."""
    url = os.environ.get("CREDITGATE_LEDGER_URL")
    token = os.environ.get("CREDITGATE_PRICING_TOKEN")
    if not url or not token:
        raise SettingsError(
            "CREDITGATE_LEDGER_URL (the ledger's query API) and CREDITGATE_PRICING_TOKEN "
            "(an agent's pricing token) are required"
        )
    pricing_server(url, token).run("stdio")
