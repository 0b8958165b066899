"""``creditgate mcp``: the pricing primitives as MCP tools for agents (the ``mcp`` SDK, over
stdio), each a call of the ledger's pricing API (ledger/pricing_http.py) with the agent's own
pricing token; and ``sandbox_call``, a model call reserved and committed in a sandbox
sidecar (``CREDITGATE_SANDBOX_URL``), which refuses a sidecar that answers as live.

There is no tool that approves or rolls back: an agent proposes, a person approves
(``ACTIONS`` in ledger/proposals.py). The token is the agent's, so the ledger refuses an
approval even if a tool asked for one.
"""

from __future__ import annotations

import os
from typing import Any

import aiohttp
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from sidecar.environment import HEADER, LIVE
from sidecar.ledger.pricing_client import PricingClient, PricingError
from sidecar.settings import SettingsError

__all__ = ["TOOLS", "pricing_server", "run"]

TOOLS = (
    "read_catalog", "diff_catalog", "simulate", "read_margin", "propose", "list_proposals",
    "get_proposal", "list_actions", "sandbox_call",
)  # fmt: skip
SANDBOX_TIMEOUT_S = 10.0


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


class _Sandbox:
    """The public API of a sandbox sidecar; every call first makes sure it is not live."""

    def __init__(self, url: str | None) -> None:
        self._url = None if url is None else url.rstrip("/")

    async def call(self, path: str, body: dict[str, Any]) -> Any:
        if self._url is None:
            raise ToolError(
                "no sandbox: set CREDITGATE_SANDBOX_URL to a sandbox sidecar's API "
                "(creditgate up --environment sandbox prints it)"
            )
        timeout = aiohttp.ClientTimeout(total=SANDBOX_TIMEOUT_S)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as http:
                async with http.get(f"{self._url}/healthz") as probe:
                    environment = probe.headers.get(HEADER)
                if environment in (None, LIVE):
                    named = environment or "no environment"
                    raise ToolError(
                        f"CREDITGATE_SANDBOX_URL ({self._url}) answers as {named}, not a "
                        "sandbox: point it at a sandbox sidecar"
                    )
                async with http.post(self._url + path, json=body) as reply:
                    answer = await reply.json()
        except (aiohttp.ClientError, TimeoutError) as error:  # down, or not a sidecar
            raise ToolError(f"the sandbox at {self._url} did not answer: {error!r}") from None
        if reply.status != 200:
            raise ToolError(f"{reply.status} {answer.get('error', answer)}")
        return answer


def pricing_server(url: str, token: str, sandbox_url: str | None = None) -> MCPServer:
    """The MCP server over the ledger at ``url``, acting with pricing token ``token``; calls
    run in the sandbox sidecar at ``sandbox_url``."""
    ledger = _Ledger(url, token)
    sandbox = _Sandbox(sandbox_url)
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

    @server.tool()
    async def sandbox_call(
        customer: str,
        model: str,
        units: dict[str, int],
        idempotency_key: str,
        feature: str = "chat",
    ) -> dict[str, Any]:
        """Run one model call in the sandbox (never live): reserve ``units`` for it, then
        commit them; both answers, with what it cost and what is left on every cap."""
        reserve = {"customer": customer, "feature": feature, "model": model, "units": units,
                   "idempotency_key": idempotency_key}  # fmt: skip
        held: dict[str, Any] = await sandbox.call("/v1/reserve", reserve)
        if not held.get("allowed"):
            return {"reserve": held}
        commit = {"reservation_id": held["reservation_id"], "units": units}
        return {"reserve": held, "commit": await sandbox.call("/v1/commit", commit)}

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
    pricing_server(url, token, os.environ.get("CREDITGATE_SANDBOX_URL")).run("stdio")
