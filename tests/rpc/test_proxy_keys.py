"""Proxy keys through the admin API, over HTTP and gRPC alike: issued once with their secret,
stored only as a hash, listed without it, idempotent by key, revocable, and a revocation
refused at once by every sidecar on the Redis."""

from __future__ import annotations

import asyncio
import hashlib
import time

import aiohttp
import grpc
import pytest

from sidecar.errors import Unauthenticated
from sidecar.rpc.gen.creditgate.v1 import creditgate_pb2 as pb
from sidecar.server import Sidecar
from sidecar.store.redis_store import RedisStore
from tests.conftest import StartSidecar
from tests.rpc.conftest import ADMIN_TOKEN, AUTH, Stubs

pytestmark = pytest.mark.redis

HEADERS = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
REVOKED_WITHIN_S = 10.0
"""Pub/sub delivers within milliseconds; only a bug takes this long."""


def _admin(sidecar: Sidecar, path: str) -> str:
    return f"http://127.0.0.1:{sidecar.admin_port}/admin/v1/customers/acme{path}"


async def _issue(http: aiohttp.ClientSession, sidecar: Sidecar, body: dict[str, str]) -> dict:
    async with http.post(_admin(sidecar, "/proxy-keys"), json=body, headers=HEADERS) as answer:
        assert answer.status == 200, await answer.text()
        return dict(await answer.json())


async def test_a_key_is_issued_once_listed_without_secret_and_revoked(
    sidecar: Sidecar, stubs: Stubs, store: RedisStore
) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.put(_admin(sidecar, ""), json={"plan": "pro"}, headers=HEADERS) as r:
            assert r.status == 200
        body = {"idempotency_key": "k1", "label": "support bot", "team": "eng", "agent": "bot"}
        first = await _issue(http, sidecar, body)
        assert first["result"] == "issued"
        key = first["key"]
        assert (key["customer"], key["team"], key["agent"], key["label"]) == (
            "acme", "eng", "bot", "support bot",
        )  # fmt: skip
        assert key["user"] is None
        secret = first["secret"]
        assert secret.startswith(key["id"] + ".")
        stored = await store.client.get(f"cg:proxy-key:{key['id']}")
        assert secret.encode() not in stored  # only its hash
        assert hashlib.sha256(secret.encode()).hexdigest().encode() in stored

        again = await _issue(http, sidecar, body)
        assert (again["result"], again["key"], again.get("secret")) == ("already_issued", key, None)

        # The same key over gRPC; a second key issued there.
        listed = await stubs.admin.ListProxyKeys(
            pb.ListProxyKeysRequest(customer="acme"), metadata=AUTH
        )
        assert [k.id for k in listed.keys] == [key["id"]]
        issued = await stubs.admin.IssueProxyKey(
            pb.IssueProxyKeyRequest(customer="acme", idempotency_key="k2", user="ann"),
            metadata=AUTH,
        )
        assert issued.result == pb.ISSUE_PROXY_KEY_RESULT_ISSUED
        assert issued.key.user == "ann"
        assert issued.HasField("secret")

        async with http.get(_admin(sidecar, "/proxy-keys"), headers=HEADERS) as r:
            keys = (await r.json())["keys"]
        assert sorted(k["id"] for k in keys) == sorted([key["id"], issued.key.id])
        assert all("secret" not in k and "hash" not in k for k in keys)

        record = await sidecar.service.keyring.check(f"Bearer {secret}", sidecar.service.clock())
        assert (record.customer, record.team, record.agent) == ("acme", "eng", "bot")

        async with http.delete(_admin(sidecar, f"/proxy-keys/{key['id']}"), headers=HEADERS) as r:
            revoked = await r.json()
        assert revoked["result"] == "revoked"
        assert revoked["key"]["revoked_at"]
        twice = await stubs.admin.RevokeProxyKey(
            pb.RevokeProxyKeyRequest(customer="acme", key_id=key["id"]), metadata=AUTH
        )
        assert twice.result == pb.REVOKE_PROXY_KEY_RESULT_ALREADY_REVOKED
        with pytest.raises(Unauthenticated, match="revoked"):
            await sidecar.service.keyring.check(f"Bearer {secret}", sidecar.service.clock())

        async with http.delete(_admin(sidecar, "/proxy-keys/pk_nope"), headers=HEADERS) as r:
            assert r.status == 404
            assert (await r.json())["error"]["field"] == "key_id"
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stubs.admin.IssueProxyKey(
                pb.IssueProxyKeyRequest(customer="nobody", idempotency_key="k"), metadata=AUTH
            )
        assert refused.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_revoked_key_is_refused_at_once_by_a_sidecar_that_cached_it(
    start_sidecar: StartSidecar,
) -> None:
    one, two = await start_sidecar(), await start_sidecar()
    async with aiohttp.ClientSession() as http:
        async with http.put(_admin(one, ""), json={"plan": "pro"}, headers=HEADERS) as r:
            assert r.status == 200
        secret = (await _issue(http, one, {"idempotency_key": "k"}))["secret"]
        assert (
            await two.service.keyring.check(f"Bearer {secret}", two.service.clock())
        ).customer == "acme"  # cached
        key_id = secret.partition(".")[0]
        async with http.delete(_admin(one, f"/proxy-keys/{key_id}"), headers=HEADERS) as r:
            assert r.status == 200
    deadline = time.monotonic() + REVOKED_WITHIN_S
    while True:
        try:
            await two.service.keyring.check(f"Bearer {secret}", two.service.clock())
        except Unauthenticated:
            break
        assert time.monotonic() < deadline, "the other sidecar still accepts a revoked key"
        await asyncio.sleep(0.01)
    for header in ("", "Basic x", "Bearer pk_unknown.secret", f"Bearer {secret}x"):
        with pytest.raises(Unauthenticated):
            await two.service.keyring.check(header, two.service.clock())
