"""Agent-operated pricing: catalog proposals, simulated on real usage, that go live only when
a second person approves them.

Who may do what is one table, ``ACTIONS``. A **pricing token** (``pt_<id>.<secret>``, issued by
the operator with a name and a role; PostgreSQL keeps its SHA-256 only) is an ``agent``'s,
which reads, diffs, simulates and proposes, or an ``approver``'s, which also approves and rolls
back. The operator's ledger token may do everything. The two-person rule counts names: a
proposal's author never approves it.

A **proposal** is a complete catalog file with a rationale. Submitting validates it (errors
name the path in the file), diffs it against the catalog file in force and simulates it on
the ledger's calls of a window (default: the last 30 days); all three are stored with it.
Nothing changes until **approval**, which, under one lock, re-reads the catalog file, refuses
(409) when it is no longer the version the proposal was diffed against, writes the proposal
over it (atomically: a new file renamed over the old one) and records the decision with the
file it replaced. Every sidecar and the ledger reload that file within their reload interval
(the existing hot-reload path). A **rollback** writes back the file the last decision
replaced, recorded the same way. Proposals and decisions are append-only; retries with the
same idempotency key answer the first result.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import msgspec

from sidecar.auth import authorize
from sidecar.catalog import Catalog, load_catalog, parse_catalog
from sidecar.catalog.diff import diff
from sidecar.catalog.files import replace_file
from sidecar.engine.decide import check_idempotency_key
from sidecar.errors import (
    CatalogError,
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)
from sidecar.ledger.db import Connection, Pool
from sidecar.ledger.locks import xact_lock
from sidecar.ledger.simulate import SimulationReport, simulate
from sidecar.text import Text, check_text
from sidecar.times import format_time, ms_of, parse_time

__all__ = [
    "ACTIONS",
    "OPERATOR",
    "PREFIX",
    "Action",
    "IssueRequest",
    "Pricer",
    "PricingDesk",
    "ProposeRequest",
    "RollbackRequest",
    "allow",
    "approve",
    "authenticate_pricer",
    "issue_token",
    "parse_proposed",
    "pricer_of",
    "proposal",
    "proposals",
    "propose",
    "rollback",
    "window",
]

PREFIX = "pt_"
OPERATOR_NAME = "operator"
DEFAULT_WINDOW_MS = 30 * 86_400_000
RATIONALE_MAX = 4000
_LOCK = 0x6367_7072  # pg_advisory_xact_lock key of catalog decisions ("cgpr")
Role = Literal["agent", "approver", "operator"]


class Action(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    route: str
    does: str
    roles: tuple[Role, ...]
    needs_approval: bool
    """It changes nothing in force by itself: a second person's approval puts it live."""


_READERS: tuple[Role, ...] = ("agent", "approver", "operator")
_APPROVERS: tuple[Role, ...] = ("approver", "operator")
ACTIONS = (
    Action(name="read_catalog", route="GET /ledger/v1/pricing/catalog",
           does="the catalog file in force and its version", roles=_READERS,
           needs_approval=False),
    Action(name="diff", route="POST /ledger/v1/pricing/diff",
           does="what a catalog changes from the one in force", roles=_READERS,
           needs_approval=False),
    Action(name="simulate", route="POST /ledger/v1/pricing/simulate",
           does="replay a window of real calls under a catalog (read-only)", roles=_READERS,
           needs_approval=False),
    Action(name="read_margin", route="GET /ledger/v1/pricing/margin?from=&to=",
           does="revenue, cost of serve and margin per plan, customer and model",
           roles=_READERS, needs_approval=False),
    Action(name="propose", route="POST /ledger/v1/pricing/proposals",
           does="submit a catalog with a rationale: validated, diffed, simulated, stored",
           roles=_READERS, needs_approval=True),
    Action(name="read_proposals", route="GET /ledger/v1/pricing/proposals[/{id}]",
           does="proposals with their diff, simulation and decision", roles=_READERS,
           needs_approval=False),
    Action(name="approve", route="POST /ledger/v1/pricing/proposals/{id}/approve",
           does="put another's proposal in force (irreversible but for a rollback)",
           roles=_APPROVERS, needs_approval=False),
    Action(name="rollback", route="POST /ledger/v1/pricing/rollback",
           does="restore the catalog file the last decision replaced", roles=_APPROVERS,
           needs_approval=False),
)  # fmt: skip
_ALLOWED = {action.name: action.roles for action in ACTIONS}


class Pricer(msgspec.Struct, frozen=True, kw_only=True):
    """Who calls the pricing API: a name (the two-person rule's unit) and a role."""

    name: str
    role: Role


OPERATOR = Pricer(name=OPERATOR_NAME, role="operator")


def allow(caller: Pricer, action: str) -> None:
    """Refuse ``caller`` (403, naming the roles that may) unless its role may ``action``."""
    roles = _ALLOWED[action]
    if caller.role not in roles:
        raise PermissionDenied(
            "Authorization",
            f"{caller.name} holds an {caller.role} token; {action} needs "
            f"{' or '.join(r for r in roles)}",
        )


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class IssueRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    idempotency_key: str
    name: Text
    role: Literal["agent", "approver"]


async def issue_token(connection: Connection, request: IssueRequest) -> dict[str, Any]:
    """A new pricing token; a retry with the same key answers ``already_issued`` without a
    secret (it was shown once and is not stored)."""
    check_idempotency_key("idempotency_key", request.idempotency_key)
    name = request.name.strip()
    if not name or len(name) > 100 or name == OPERATOR_NAME:
        raise InvalidInput("name", "1 to 100 characters naming who holds it, not 'operator'")
    token_id = PREFIX + hashlib.sha256(request.idempotency_key.encode()).hexdigest()[:16]
    token = f"{token_id}.{secrets.token_urlsafe(24)}"
    inserted = await connection.fetchval(
        "INSERT INTO pricing_tokens (id, name, role, hash) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT DO NOTHING RETURNING id",
        token_id, name, request.role, _hash(token),
    )  # fmt: skip
    row = await connection.fetchrow("SELECT name, role FROM pricing_tokens WHERE id = $1", token_id)
    assert row is not None
    answer = {"id": token_id, "name": row["name"], "role": row["role"]}
    if inserted is None:
        return {**answer, "result": "already_issued"}
    return {**answer, "result": "issued", "secret": token}


async def pricer_of(pool: Pool, header: str, operator: bytes, *, field: str) -> Pricer:
    """Who sends ``header`` (``Bearer <token>``): a pricing token's holder, or the operator
    with the ledger token ``operator`` (401 without a token, 403 with a wrong one)."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.startswith(PREFIX):
        async with pool.acquire() as connection:
            return await authenticate_pricer(connection, token)
    authorize(header, operator, field=field, what="ledger token or pricing token")
    return OPERATOR


async def authenticate_pricer(connection: Connection, token: str) -> Pricer:
    """The holder of pricing token ``token`` (401 when it is not one, as a scoped admin
    token that is unknown)."""
    token_id = token.split(".", 1)[0]
    row = await connection.fetchrow(
        "SELECT name, role, hash FROM pricing_tokens WHERE id = $1", token_id
    )
    if row is None or not hmac.compare_digest(row["hash"], _hash(token)):
        raise Unauthenticated("Authorization", "unknown pricing token; ask the operator")
    role: Role = row["role"]
    return Pricer(name=row["name"], role=role)


class ProposeRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    idempotency_key: str
    catalog: Text
    """The whole catalog file (YAML text)."""
    rationale: Text
    start: str | None = msgspec.field(default=None, name="from")
    """The simulation's window (RFC 3339); default the 30 days before now."""
    end: str | None = msgspec.field(default=None, name="to")


def parse_proposed(text: str) -> Catalog:
    """A proposed catalog file, validated; InvalidInput names the path inside it."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput("catalog", "is required: the whole catalog file, as YAML text")
    try:
        return parse_catalog(text, file="catalog")
    except CatalogError as error:
        raise InvalidInput("catalog", str(error).removeprefix("catalog: ")) from None


def window(start: str | None, end: str | None, now_ms: int) -> tuple[int, int]:
    end_ms = parse_time("to", end) if end is not None else now_ms
    start_ms = parse_time("from", start) if start is not None else end_ms - DEFAULT_WINDOW_MS
    return start_ms, end_ms


def _summary(report: SimulationReport) -> dict[str, Any]:
    out: dict[str, Any] = msgspec.to_builtins(report)
    return {
        "from": out["from"], "to": out["to"], "totals": out["totals"], "plans": out["plans"],
        "models": out["models"], "denied": out["denied"][:100],
    }  # fmt: skip


async def propose(
    connection: Connection, caller: Pricer, catalog_path: str, request: ProposeRequest,
    now_ms: int,
) -> dict[str, Any]:  # fmt: skip
    allow(caller, "propose")
    check_idempotency_key("idempotency_key", request.idempotency_key)
    rationale = request.rationale.strip()
    if not rationale or len(rationale) > RATIONALE_MAX:
        raise InvalidInput(
            "rationale", f"say why, for the approver: 1 to {RATIONALE_MAX} characters"
        )
    proposal_id = (
        "cp_"
        + hashlib.sha256(f"{caller.name}\0{request.idempotency_key}".encode()).hexdigest()[:16]
    )
    if await connection.fetchval("SELECT 1 FROM catalog_proposals WHERE id = $1", proposal_id):
        return {**await proposal(connection, caller, proposal_id), "result": "already_proposed"}
    new = parse_proposed(request.catalog)
    current = load_catalog(catalog_path)
    start_ms, end_ms = window(request.start, request.end, now_ms)
    changes = diff(current, new)
    report = await simulate(connection, new, start_ms, end_ms)
    await connection.execute(
        "INSERT INTO catalog_proposals (id, author, rationale, document, version, base_version,"
        " diff, simulation) VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8::jsonb) "
        "ON CONFLICT DO NOTHING",
        proposal_id, caller.name, rationale, request.catalog, new.version, current.version,
        msgspec.json.encode(changes).decode(), msgspec.json.encode(_summary(report)).decode(),
    )  # fmt: skip
    return {**await proposal(connection, caller, proposal_id), "result": "proposed"}


_PROPOSAL = """
SELECT p.id, p.author, p.rationale, p.version, p.base_version, p.diff::text AS diff,
       p.simulation::text AS simulation, p.created_at, d.actor AS approver, d.ts AS approved_at
FROM catalog_proposals p
LEFT JOIN catalog_decisions d ON d.proposal_id = p.id AND d.action = 'approved'
"""


def _view(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "author": row["author"],
        "rationale": row["rationale"],
        "version": row["version"],
        "base_version": row["base_version"],
        "status": "approved" if row["approver"] else "proposed",
        "approver": row["approver"],
        "approved_at": format_time(ms_of(row["approved_at"])) if row["approved_at"] else None,
        "created_at": format_time(ms_of(row["created_at"])),
        "diff": msgspec.json.decode(row["diff"]),
        "simulation": msgspec.json.decode(row["simulation"]),
    }


async def proposal(connection: Connection, caller: Pricer, proposal_id: str) -> dict[str, Any]:
    allow(caller, "read_proposals")
    row = await connection.fetchrow(_PROPOSAL + "WHERE p.id = $1", proposal_id)
    if row is None:
        raise NotFound("proposal", f"no proposal {proposal_id!r}")
    return _view(row)


async def proposals(connection: Connection, caller: Pricer) -> list[dict[str, Any]]:
    allow(caller, "read_proposals")
    rows = await connection.fetch(_PROPOSAL + "ORDER BY p.created_at DESC, p.id LIMIT 100")
    return [_view(row) for row in rows]


async def _decide(
    connection: Connection,
    *,
    decision_id: str,
    proposal_id: str | None,
    action: Literal["approved", "rolled_back"],
    actor: str,
    path: str,
    expected: str,
    document: str,
) -> dict[str, Any]:
    """Under the lock: the file must still be version ``expected``; record, write, commit
    (and the old file back if the commit fails, so that the file never runs ahead of the
    record)."""
    transaction = connection.transaction()
    await transaction.start()
    written: str | None = None
    try:
        await xact_lock(connection, _LOCK)
        done = await connection.fetchrow(
            "SELECT to_version FROM catalog_decisions WHERE id = $1", decision_id
        )
        if done is not None:
            await transaction.rollback()
            return {"result": "already_done", "version": done["to_version"]}
        previous = Path(path).read_text(encoding="utf-8")
        current = parse_catalog(previous, file=path)
        if current.version != expected:
            raise Conflict(
                "proposal" if proposal_id else "rollback",
                f"the catalog in force is {current.version}, not {expected}: it changed since; "
                + ("submit the proposal again to diff and simulate it on what is in force"
                   if proposal_id else "roll back only what the last decision put in force"),
            )  # fmt: skip
        new = parse_catalog(document, file="catalog")
        await connection.execute(
            # clock_timestamp(): the time under the lock, so that ts orders the decisions
            # (now() is the transaction's start, before it waited for the lock).
            "INSERT INTO catalog_decisions (id, proposal_id, action, actor, from_version, "
            "to_version, previous_document, ts) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, clock_timestamp())",
            decision_id, proposal_id, action, actor, current.version, new.version, previous,
        )  # fmt: skip
        try:
            replace_file(path, document)
        except OSError as error:
            raise Conflict(
                "catalog",
                f"the catalog file {path} cannot be written here ({error.strerror}); with a "
                "read-only catalog (a Kubernetes ConfigMap), apply the proposal's file to it",
            ) from None
        written = previous
        await transaction.commit()
    except BaseException:
        if written is not None:
            replace_file(path, written)
        with contextlib.suppress(Exception):
            await transaction.rollback()
        raise
    return {"result": action, "from_version": current.version, "version": new.version}


async def approve(
    connection: Connection, caller: Pricer, catalog_path: str, proposal_id: str
) -> dict[str, Any]:
    allow(caller, "approve")
    proposal_id = check_text("id", proposal_id)
    row = await connection.fetchrow(
        "SELECT author, document, base_version FROM catalog_proposals WHERE id = $1", proposal_id
    )
    if row is None:
        raise NotFound("proposal", f"no proposal {proposal_id!r}")
    if row["author"] == caller.name:
        raise PermissionDenied(
            "Authorization",
            f"{caller.name} wrote this proposal; another approver must approve it",
        )
    return await _decide(
        connection, decision_id="ap_" + proposal_id, proposal_id=proposal_id,
        action="approved", actor=caller.name, path=catalog_path,
        expected=row["base_version"], document=row["document"],
    )  # fmt: skip


class RollbackRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    idempotency_key: str


async def rollback(
    connection: Connection, caller: Pricer, catalog_path: str, request: RollbackRequest
) -> dict[str, Any]:
    allow(caller, "rollback")
    check_idempotency_key("idempotency_key", request.idempotency_key)
    last = await connection.fetchrow(
        "SELECT to_version, previous_document FROM catalog_decisions ORDER BY ts DESC, id LIMIT 1"
    )
    if last is None:
        raise NotFound("rollback", "no catalog was put in force here yet: nothing to roll back")
    decision_id = "rb_" + hashlib.sha256(request.idempotency_key.encode()).hexdigest()[:16]
    return await _decide(
        connection, decision_id=decision_id, proposal_id=None, action="rolled_back",
        actor=caller.name, path=catalog_path, expected=last["to_version"],
        document=last["previous_document"],
    )  # fmt: skip


class ApproveRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    id: str
    """The proposal's id; over HTTP it is in the path."""


class PricingDesk:
    """Submission, approval and rollback for the gRPC transport: the pool, the catalog file,
    the clock; over the same functions as the HTTP routes."""

    def __init__(self, pool: Pool, catalog_path: str, clock: Callable[[], int]) -> None:
        self._pool, self._path, self._clock = pool, catalog_path, clock

    async def pricer(self, header: str, operator: bytes) -> Pricer:
        return await pricer_of(self._pool, header, operator, field="authorization")

    async def submit(self, request: ProposeRequest, caller: Pricer) -> dict[str, Any]:
        async with self._pool.acquire() as connection:
            answer = await propose(connection, caller, self._path, request, self._clock())
        result = answer.pop("result")
        return {"result": result, "proposal": answer}

    async def approve(self, request: ApproveRequest, caller: Pricer) -> dict[str, Any]:
        async with self._pool.acquire() as connection:
            return await approve(connection, caller, self._path, request.id)

    async def rollback(self, request: RollbackRequest, caller: Pricer) -> dict[str, Any]:
        async with self._pool.acquire() as connection:
            return await rollback(connection, caller, self._path, request)
