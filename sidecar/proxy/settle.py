"""Settling one proxied call exactly once: commit what it used, or release its hold."""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType
from typing import Any

from sidecar.errors import RequestError
from sidecar.proxy.bounds import usage_units
from sidecar.service import Service
from sidecar.wire import CommitRequest, ReleaseRequest

__all__ = ["Settlement"]

log = logging.getLogger(__name__)


class Settlement:
    """The hold of one call. Leaving the ``async with`` block without a commit releases it,
    whatever ended the block (a bug, the client gone), shielded from cancellation."""

    def __init__(self, service: Service, reservation_id: str) -> None:
        self.service = service
        self.reservation_id = reservation_id
        self.done = False
        self.cost: str | None = None

    async def __aenter__(self) -> Settlement:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, _: TracebackType | None
    ) -> None:
        if not self.done:
            await asyncio.shield(self.release())

    def headers(self) -> dict[str, str]:
        out = {"X-Creditgate-Reservation": self.reservation_id}
        if self.cost is not None:
            out["X-Creditgate-Cost"] = self.cost
        return out

    async def commit(self, units: dict[str, int], *, estimated: bool = False) -> None:
        self.done = True
        request = CommitRequest(
            reservation_id=self.reservation_id, units=units, estimated=estimated
        )
        try:
            self.cost = (await asyncio.shield(self.service.commit(request))).cost
        except RequestError as error:  # outcome unknown: the spool replays it
            log.warning("proxy commit of %s: %s", self.reservation_id, error)

    async def commit_usage(self, usage: Any, estimate: dict[str, int]) -> None:
        """Commit the upstream's ``usage``; without one, ``estimate``, flagged estimated."""
        units = usage_units(usage)
        if units is None:
            await self.commit(estimate, estimated=True)
        else:
            await self.commit(units)

    async def release(self) -> None:
        self.done = True
        try:
            await self.service.release(ReleaseRequest(reservation_id=self.reservation_id))
        except RequestError as error:  # the hold expires on its own
            log.warning("proxy release of %s: %s", self.reservation_id, error)
