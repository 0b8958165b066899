"""Who a proxied call is attributed to: the proxy key's subject, narrowed by headers.

``X-Creditgate-Agent`` names the agent of a key bound to none (a key bound to one accepts only
that one), ``X-Creditgate-Session`` the session, ``X-Creditgate-Feature`` the feature (default:
the proxy's), ``X-Creditgate-Tags`` tags as ``name=value,name=value``. A header never widens
the key: it cannot name another customer, team or user, nor change its agent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sidecar.errors import InvalidInput, RequestError
from sidecar.ids import check_id
from sidecar.service.keys import KeyRecord

__all__ = ["Widened", "subject_of"]


class Widened(RequestError):
    """A header names more than the proxy key allows (403)."""

    code = "forbidden"


def _tags(text: str) -> dict[str, str]:
    tags = {}
    for pair in (p for p in text.split(",") if p.strip()):
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise InvalidInput("X-Creditgate-Tags", "write name=value pairs separated by commas")
        tags[name.strip()] = value.strip()
    return tags


def subject_of(key: KeyRecord, headers: Mapping[str, str], feature: str) -> dict[str, Any]:
    """The reserve's subject fields: customer apart, everything the reserve names."""
    agent = headers.get("X-Creditgate-Agent")
    if agent is not None:
        check_id("X-Creditgate-Agent", agent)
        if key.agent is not None and agent != key.agent:
            raise Widened(
                "X-Creditgate-Agent",
                f"this key is bound to agent {key.agent!r}; it cannot act as {agent!r}",
            )
    session = headers.get("X-Creditgate-Session")
    if session is not None:
        check_id("X-Creditgate-Session", session)
    return {
        "feature": headers.get("X-Creditgate-Feature", feature),
        "team": key.team,
        "user": key.user,
        "agent": key.agent or agent,
        "session": session,
        "tags": _tags(headers.get("X-Creditgate-Tags", "")),
    }
