"""Agent-operated pricing through the ledger's HTTP API: an agent proposes a catalog (it is
validated, diffed and simulated on real usage), only another person's approver token puts it
in force, a proposal diffed against a catalog no longer in force cannot go live, approval
reaches every sidecar within the reload interval, and a rollback restores the old version."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import msgspec
import pytest
import yaml
from mcp import Client, StdioServerParameters

from sidecar.catalog import load_catalog
from sidecar.embedded import EmbeddedRedis
from sidecar.ledger.mcp_server import TOOLS
from sidecar.ledger.proposals import ACTIONS
from sidecar.ledger.server import Ledger
from sidecar.ledger.settings import LedgerSettings
from sidecar.rpc.gen.creditgate.v1 import creditgate_pb2 as pb
from sidecar.rpc.gen.creditgate.v1 import creditgate_pb2_grpc as pb_grpc
from sidecar.server import Sidecar
from tests.conftest import EXAMPLE, sidecars
from tests.governance.conftest import ADMIN_TOKEN, LEDGER_TOKEN
from tests.ledger.conftest import database, postgres  # noqa: F401 - fixtures
from tests.ledger.test_cli import creditgate
from tests.rpc.test_bad_input import bad_request_field

pytestmark = [pytest.mark.redis, pytest.mark.postgres]

RELOAD_MS = 100
ROOT = Path(__file__).resolve().parents[2]


class Pricing:
    def __init__(self, ledger: Ledger, sidecars: list[Sidecar], http: aiohttp.ClientSession,
                 file: Path) -> None:  # fmt: skip
        self.ledger, self.sidecars, self.http, self.file = ledger, sidecars, http, file

    async def call(
        self, method: str, path: str, token: str = LEDGER_TOKEN, body: Any = None
    ) -> tuple[int, Any]:
        url = f"http://127.0.0.1:{self.ledger.port}/ledger/v1/pricing{path}"
        headers = {"Authorization": f"Bearer {token}"}
        async with self.http.request(method, url, json=body, headers=headers) as response:
            return response.status, await response.json()

    async def token(self, name: str, role: str) -> str:
        body = {"idempotency_key": f"{name}-{role}", "name": name, "role": role}
        status, answer = await self.call("POST", "/tokens", body=body)
        assert status == 200, answer
        return str(answer["secret"])

    async def versions(self) -> set[str]:
        out = set()
        for sidecar in self.sidecars:
            url = f"http://127.0.0.1:{sidecar.port}/v1/check"
            async with self.http.post(url, json={"customer": "acme", "feature": "sso"}) as r:
                out.add((await r.json())["catalog_version"])
        return out

    async def all_on(self, version: str) -> None:
        """Wait until every sidecar answers with ``version``: at most a few reload intervals."""
        async with asyncio.timeout(RELOAD_MS * 20 / 1000):
            while await self.versions() != {version}:
                await asyncio.sleep(RELOAD_MS / 1000 / 4)


@pytest.fixture
async def pricing(
    tmp_path: Path,
    redis_server: EmbeddedRedis,
    database: str,  # noqa: F811 - a fixture
) -> AsyncIterator[Pricing]:
    file = tmp_path / "catalog.yaml"
    file.write_text(EXAMPLE.read_text())
    ledger = Ledger(LedgerSettings(
        catalog=str(file), redis=redis_server.url, database_url=database, port=0,
        token=LEDGER_TOKEN, grpc_port=0, poll_ms=10, catalog_reload_ms=RELOAD_MS,
    ))  # fmt: skip
    await ledger.start()
    try:
        async with (
            sidecars(redis_server.url, ADMIN_TOKEN) as start,
            aiohttp.ClientSession() as http,
        ):
            started = [await start(catalog=str(file), catalog_reload_ms=RELOAD_MS)
                       for _ in range(2)]  # fmt: skip
            headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
            url = f"http://127.0.0.1:{started[0].admin_port}/admin/v1/customers/acme"
            async with http.put(url, json={"plan": "pro"}, headers=headers) as response:
                assert response.status == 200
            yield Pricing(ledger, started, http, file)
    finally:
        await ledger.stop()


def _raised_gpt4o() -> str:
    data = yaml.safe_load(EXAMPLE.read_text())
    data["models"]["gpt-4o"]["prices_per_million"]["input_tokens"] = "3.00"
    return yaml.safe_dump(data)


async def test_propose_approve_go_live_and_roll_back(pricing: Pricing) -> None:
    agent = await pricing.token("pricing-agent", "agent")
    alice = await pricing.token("alice", "approver")
    old = load_catalog(pricing.file).version
    await pricing.all_on(old)

    body = {"idempotency_key": "p1", "catalog": _raised_gpt4o(),
            "rationale": "gpt-4o input below cost after the vendor's increase"}  # fmt: skip
    status, proposal = await pricing.call("POST", "/proposals", agent, body)
    assert status == 200, proposal
    assert (proposal["result"], proposal["status"], proposal["author"]) == (
        "proposed",
        "proposed",
        "pricing-agent",
    )
    assert proposal["base_version"] == old
    assert proposal["diff"] == [
        {
            "path": "models.gpt-4o.prices_per_million.input_tokens",
            "change": "changed",
            "old": "2.500000000",
            "new": "3.000000000",
        }
    ]
    assert proposal["simulation"]["totals"]["events"] == 0
    status, again = await pricing.call("POST", "/proposals", agent, body)  # a retry
    assert (status, again["result"], again["id"]) == (200, "already_proposed", proposal["id"])
    assert load_catalog(pricing.file).version == old  # nothing changed yet

    path = f"/proposals/{proposal['id']}/approve"
    status, refused = await pricing.call("POST", path, agent)  # an agent never approves
    assert (status, refused["error"]["code"]) == (403, "permission_denied")
    assert "approve needs approver or operator" in refused["error"]["message"]
    author_approver = await pricing.token("pricing-agent", "approver")  # same name, other role
    status, refused = await pricing.call("POST", path, author_approver)
    assert status == 403
    assert "another approver must approve it" in refused["error"]["message"]

    status, approved = await pricing.call("POST", path, alice)
    assert status == 200, approved
    assert (approved["result"], approved["from_version"]) == ("approved", old)
    new = approved["version"]
    assert load_catalog(pricing.file).version == new != old
    await pricing.all_on(new)  # every sidecar, within the reload interval
    status, retried = await pricing.call("POST", path, alice)
    assert (status, retried["result"]) == (200, "already_done")
    status, shown = await pricing.call("GET", f"/proposals/{proposal['id']}", agent)
    assert (shown["status"], shown["approver"]) == ("approved", "alice")

    status, back = await pricing.call("POST", "/rollback", alice, {"idempotency_key": "rb-1"})
    assert (status, back["result"], back["version"]) == (200, "rolled_back", old), back
    await pricing.all_on(old)
    status, again = await pricing.call("POST", "/rollback", alice, {"idempotency_key": "rb-1"})
    assert (status, again["result"]) == (200, "already_done")
    assert load_catalog(pricing.file).version == old
    async with pricing.ledger.pool.acquire() as db:  # type: ignore[union-attr]
        decisions = await db.fetch(
            "SELECT action, actor, from_version, to_version FROM catalog_decisions ORDER BY ts"
        )
    assert [tuple(r) for r in decisions] == [
        ("approved", "alice", old, new),
        ("rolled_back", "alice", new, old),
    ]


async def test_a_stale_proposal_cannot_go_live(pricing: Pricing) -> None:
    agent = await pricing.token("agent", "agent")
    bob = await pricing.token("bob", "approver")
    first = {"idempotency_key": "a", "catalog": _raised_gpt4o(), "rationale": "raise gpt-4o"}
    data = yaml.safe_load(EXAMPLE.read_text())
    data["plans"]["pro"]["fee"] = "59"
    second = {"idempotency_key": "b", "catalog": yaml.safe_dump(data), "rationale": "pro fee"}
    ids = []
    for body in (first, second):
        status, proposal = await pricing.call("POST", "/proposals", agent, body)
        assert status == 200, proposal
        ids.append(proposal["id"])
    status, _ = await pricing.call("POST", f"/proposals/{ids[0]}/approve", bob)
    assert status == 200
    in_force = load_catalog(pricing.file).version
    status, refused = await pricing.call("POST", f"/proposals/{ids[1]}/approve", bob)
    assert (status, refused["error"]["code"], refused["error"]["field"]) == (
        409,
        "conflict",
        "proposal",
    )
    assert "submit the proposal again" in refused["error"]["message"]
    assert load_catalog(pricing.file).version == in_force  # nothing moved


async def test_bad_proposals_and_tokens_are_refused_naming_the_field(pricing: Pricing) -> None:
    agent = await pricing.token("agent", "agent")
    data = yaml.safe_load(EXAMPLE.read_text())
    data["plans"]["pro"]["features"]["chat"]["limit"] = -5
    cases = [
        ({"idempotency_key": "x", "catalog": yaml.safe_dump(data), "rationale": "r"},
         "catalog", "plans.pro.features.chat.limit"),
        ({"idempotency_key": "y", "catalog": EXAMPLE.read_text(), "rationale": " "},
         "rationale", "say why"),
        ({"idempotency_key": "z", "catalog": "", "rationale": "r"}, "catalog", "is required"),
    ]  # fmt: skip
    for body, field, text in cases:
        status, refused = await pricing.call("POST", "/proposals", agent, body)
        assert (status, refused["error"]["field"]) == (400, field), refused
        assert text in refused["error"]["message"]
    status, refused = await pricing.call("POST", "/tokens", agent, {
        "idempotency_key": "t", "name": "mallory", "role": "approver"})  # fmt: skip
    assert status == 403  # an agent cannot mint an approver
    status, refused = await pricing.call("GET", "/proposals", "pt_nope.secret")
    assert status == 401  # unknown, as an unknown scoped admin token
    status, listed = await pricing.call("GET", "/proposals", agent)
    assert (status, listed["proposals"]) == (200, [])  # nothing was stored
    status, actions = await pricing.call("GET", "/actions", agent)
    assert [a["name"] for a in actions["actions"]] == [a.name for a in ACTIONS]
    agents = {a["name"]: a["needs_approval"] for a in actions["actions"] if "agent" in a["roles"]}
    assert "approve" not in agents
    assert agents["propose"] is True


async def test_the_mcp_server_simulates_and_proposes_and_has_no_approve_tool(
    pricing: Pricing,
) -> None:
    """``creditgate mcp`` as an agent runs it, through the SDK's own client over stdio."""
    agent = await pricing.token("mcp-agent", "agent")
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "sidecar.cli", "mcp"], cwd=str(ROOT),
        env={"CREDITGATE_LEDGER_URL": f"http://127.0.0.1:{pricing.ledger.port}",
             "CREDITGATE_PRICING_TOKEN": agent},
    )  # fmt: skip
    before = load_catalog(pricing.file).version
    async with Client(params) as client:
        listed = await client.list_tools()
        names = {tool.name for tool in listed.tools}
        assert names == set(TOOLS)
        assert not [n for n in names if "approve" in n or "rollback" in n]
        simulated = await client.call_tool("simulate", {"catalog": _raised_gpt4o()})
        assert not simulated.is_error, simulated.content
        report = simulated.structured_content or {}
        assert report["totals"]["events"] == 0
        bad = await client.call_tool("diff_catalog", {"catalog": "models: ["})
        assert bad.is_error
        assert "400 invalid_request: catalog" in str(bad.content)
        proposed = await client.call_tool("propose", {
            "catalog": _raised_gpt4o(), "rationale": "gpt-4o input below cost",
            "idempotency_key": "mcp-1"})  # fmt: skip
        assert not proposed.is_error, proposed.content
        proposal = proposed.structured_content or {}
        assert (proposal["author"], proposal["status"]) == ("mcp-agent", "proposed")
    assert load_catalog(pricing.file).version == before  # proposing changes nothing
    status, shown = await pricing.call("GET", f"/proposals/{proposal['id']}")
    assert (status, shown["author"]) == (200, "mcp-agent")


async def test_the_cli_proposes_approves_and_rolls_back(pricing: Pricing, tmp_path: Path) -> None:
    agent = await pricing.token("cli-agent", "agent")
    carol = await pricing.token("carol", "approver")
    file = tmp_path / "proposal.yaml"
    file.write_text(_raised_gpt4o())
    ledger = ("--ledger-url", f"http://127.0.0.1:{pricing.ledger.port}")
    old = load_catalog(pricing.file).version
    code, out, err = await creditgate(
        "policy", "propose", str(file), "--rationale", "raise gpt-4o", *ledger, "--token", agent
    )
    assert code == 0, err
    proposal = msgspec.json.decode(out)
    assert (proposal["result"], proposal["author"]) == ("proposed", "cli-agent")
    code, _, err = await creditgate("policy", "approve", proposal["id"], *ledger, "--token", agent)
    assert code == 1
    assert "403 permission_denied: Authorization" in err
    code, out, err = await creditgate(
        "policy", "approve", proposal["id"], *ledger, "--token", carol
    )
    assert code == 0, err
    assert msgspec.json.decode(out)["from_version"] == old
    code, out, err = await creditgate(
        "policy", "rollback", "--idempotency-key", "cli-rb", *ledger, "--token", carol
    )
    assert code == 0, err
    assert msgspec.json.decode(out)["version"] == old == load_catalog(pricing.file).version
    code, _, err = await creditgate("policy", "approve", proposal["id"])
    assert code == 2
    assert "--ledger-url (or CREDITGATE_LEDGER_URL)" in err


async def test_a_proposal_submitted_over_grpc_is_the_one_http_shows(pricing: Pricing) -> None:
    agent = await pricing.token("grpc-agent", "agent")
    metadata = (("authorization", f"Bearer {agent}"),)
    request = pb.SubmitProposalRequest(
        catalog=_raised_gpt4o(), rationale="raise gpt-4o", idempotency_key="g1"
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{pricing.ledger.grpc_port}") as channel:
        stub = pb_grpc.CreditgatePricingServiceStub(channel)  # type: ignore[no-untyped-call]
        answer = await stub.SubmitProposal(request, metadata=metadata)
        again = await stub.SubmitProposal(request, metadata=metadata)
        bad = pb.SubmitProposalRequest(catalog="models: [", rationale="x", idempotency_key="g2")
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.SubmitProposal(bad, metadata=metadata)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert bad_request_field(refused.value)[0] == "catalog"
        with pytest.raises(grpc.aio.AioRpcError) as anonymous:
            await stub.SubmitProposal(request)
        assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert answer.result == pb.SUBMIT_PROPOSAL_RESULT_PROPOSED
    assert again.result == pb.SUBMIT_PROPOSAL_RESULT_ALREADY_PROPOSED
    assert again.proposal.id == answer.proposal.id
    proposal = answer.proposal
    assert (proposal.author, proposal.status) == ("grpc-agent", "proposed")
    assert [(c.path, c.old, c.new) for c in proposal.diff] == [
        ("models.gpt-4o.prices_per_million.input_tokens", "2.500000000", "3.000000000")
    ]
    status, shown = await pricing.call("GET", f"/proposals/{proposal.id}", agent)
    assert status == 200
    assert shown["simulation"]["totals"]["events"] == proposal.simulation.totals.events
    assert shown["version"] == proposal.version
    status, listed = await pricing.call("GET", "/proposals", agent)
    assert [p["id"] for p in listed["proposals"]] == [proposal.id]  # the bad one stored nothing


async def test_a_proposal_approved_and_rolled_back_over_grpc_goes_live_as_over_http(
    pricing: Pricing,
) -> None:
    """The gRPC pricing service approves and rolls back through the same rules: the author's
    token and an agent's are refused, an approver's puts the catalog in force on every sidecar,
    a retry changes nothing, and a rollback puts the old one back once."""
    agent = await pricing.token("grpc-agent", "agent")
    alice = await pricing.token("alice", "approver")
    author = await pricing.token("grpc-agent", "approver")  # same name, other role
    old = load_catalog(pricing.file).version

    def auth(token: str) -> tuple[tuple[str, str]]:
        return (("authorization", f"Bearer {token}"),)

    submit = pb.SubmitProposalRequest(
        catalog=_raised_gpt4o(), rationale="raise gpt-4o", idempotency_key="g1"
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{pricing.ledger.grpc_port}") as channel:
        stub = pb_grpc.CreditgatePricingServiceStub(channel)  # type: ignore[no-untyped-call]
        proposal = (await stub.SubmitProposal(submit, metadata=auth(agent))).proposal
        approve = pb.ApproveProposalRequest(id=proposal.id)
        for token in (agent, author):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.ApproveProposal(approve, metadata=auth(token))
            assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert bad_request_field(refused.value)[0] == "Authorization"
        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await stub.ApproveProposal(
                pb.ApproveProposalRequest(id="cp_nope"), metadata=auth(alice)
            )
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
        assert load_catalog(pricing.file).version == old  # the refusals changed nothing

        approved = await stub.ApproveProposal(approve, metadata=auth(alice))
        assert approved.result == pb.CATALOG_DECISION_RESULT_APPROVED
        assert approved.from_version == old
        assert load_catalog(pricing.file).version == approved.version != old
        await pricing.all_on(approved.version)
        retried = await stub.ApproveProposal(approve, metadata=auth(alice))
        assert retried.result == pb.CATALOG_DECISION_RESULT_ALREADY_DONE

        rollback = pb.RollbackCatalogRequest(idempotency_key="rb-grpc")
        back = await stub.RollbackCatalog(rollback, metadata=auth(alice))
        assert (back.result, back.version) == (pb.CATALOG_DECISION_RESULT_ROLLED_BACK, old)
        again = await stub.RollbackCatalog(rollback, metadata=auth(alice))
        assert again.result == pb.CATALOG_DECISION_RESULT_ALREADY_DONE
    await pricing.all_on(old)
    status, shown = await pricing.call("GET", f"/proposals/{proposal.id}", agent)
    assert (status, shown["status"], shown["approver"]) == (200, "approved", "alice")
