"""A client of the ledger's pricing API (ledger/pricing_http.py), for the CLI's ``policy
propose | approve | rollback`` and the MCP server: one request per call, an error answer
raised as PricingError with what the ledger said."""

from __future__ import annotations

from typing import Any

import aiohttp
import msgspec

__all__ = ["PricingClient", "PricingError"]

TIMEOUT_S = 120.0
"""A simulation of a long window takes its time."""


class PricingError(Exception):
    def __init__(self, status: int, answer: Any) -> None:
        error = answer.get("error", {}) if isinstance(answer, dict) else {}
        field = error.get("field")
        super().__init__(
            f"{status} {error.get('code')}: "
            + (f"{field}: " if field else "") + str(error.get("message", answer))
        )  # fmt: skip
        self.status = status


class PricingClient:
    """The pricing API of the ledger at ``url`` (its query API), with bearer ``token``."""

    def __init__(self, url: str, token: str) -> None:
        self._base = url.rstrip("/") + "/ledger/v1/pricing"
        self._headers = {"Authorization": f"Bearer {token}"}

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
        async with (
            aiohttp.ClientSession(timeout=timeout) as http,
            http.request(method, self._base + path, json=body, headers=self._headers) as reply,
        ):
            raw = await reply.read()
        try:
            answer = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            answer = raw.decode(errors="replace")
        if reply.status != 200:
            raise PricingError(reply.status, answer)
        return answer
