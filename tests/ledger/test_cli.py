"""``creditgate ledger reconcile`` and ``rebuild`` as an operator runs them: real processes,
real time (the commands read the wall clock), exit codes that scripts can trust."""

from __future__ import annotations

import asyncio
import os
import sys

import pytest

from sidecar.catalog import Catalog
from sidecar.ledger.db import Pool
from sidecar.service import Service
from sidecar.store.redis_store import RedisStore
from sidecar.wire import CommitRequest, GrantRequest, ReserveRequest, UpsertCustomerRequest
from tests.ledger.conftest import CATALOG, drain, worker
from tests.ledger.scenario import money_state

pytestmark = [pytest.mark.redis, pytest.mark.postgres]


async def creditgate(*args: str) -> tuple[int, str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k != "DATABASE_URL" and not k.startswith("CREDITGATE")
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sidecar.cli", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_reconcile_and_rebuild_from_the_command_line(
    redis_url: str, store: RedisStore, database: str, pool: Pool,
    ledger_catalog: Catalog,
) -> None:  # fmt: skip
    service = Service(store, ledger_catalog)  # the wall clock, as the commands use
    await service.upsert_customer("acme", UpsertCustomerRequest(plan="test"))
    await service.grant("acme", GrantRequest(credit_type="paid", amount="3", idempotency_key="k"))
    for i in range(3):
        hold = await service.reserve(
            ReserveRequest(customer="acme", feature="chat", model="small", team="eng",
                           units={"input_tokens": 500}, idempotency_key=f"r{i}")
        )  # fmt: skip
        await service.commit(
            CommitRequest(reservation_id=hold.reservation_id or "", units={"input_tokens": 400})
        )
    await drain(worker(store, pool))
    where = ("--redis", redis_url, "--database-url", database, "--catalog", str(CATALOG))

    code, out, err = await creditgate("ledger", "reconcile", *where)
    assert (code, out) == (0, "")
    assert "1 customers, 0 differences" in err
    code, out, _ = await creditgate("ledger", "backfill-credentials", *where)
    assert code == 0
    assert out.startswith("1 customers, 0 credentials stored in the ledger")

    before = await money_state(store, "acme")
    await store.client.hincrby(store.layout.key("acme", "u:life"), "team:eng|used", 1)
    code, out, _ = await creditgate("ledger", "reconcile", *where)
    assert code == 1
    assert out == "acme u:life team:eng|used: redis 1200001 ledger 1200000\n"

    code, _, err = await creditgate("ledger", "rebuild", *where, "--customer", "acme")
    assert code == 1
    assert "still has state in Redis" in err
    await store.client.flushall()
    code, out, _ = await creditgate("ledger", "rebuild", *where, "--all")
    assert code == 0
    assert out.startswith("acme: rebuilt 2 buckets")
    assert await money_state(store, "acme") == before
    code, _, _ = await creditgate("ledger", "reconcile", *where)
    assert code == 0

    code, _, err = await creditgate("ledger", "reconcile", "--redis", redis_url)
    assert code == 2
    assert "--database-url (or DATABASE_URL) is required" in err


async def test_serve_without_a_database_or_embedded_binaries_names_the_setting(
    tmp_path: os.PathLike[str], redis_url: str
) -> None:
    """As in the image, which carries no PostgreSQL: exit 2 and say to set DATABASE_URL."""
    empty = str(tmp_path)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sidecar.cli", "ledger", "serve", "--catalog", str(CATALOG),
        "--redis", redis_url,
        stderr=asyncio.subprocess.PIPE,
        env={**{k: v for k, v in os.environ.items() if k != "DATABASE_URL"},
             "CREDITGATE_PG_BIN": empty},
    )  # fmt: skip
    _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    message = err.decode()
    assert "--database-url (or DATABASE_URL) is unset" in message
    assert "Traceback" not in message


async def test_serve_with_a_grpc_port_but_no_token_names_both_settings(redis_url: str) -> None:
    """The gRPC corrections service needs the ledger token: exit 2 before anything starts."""
    code, _, err = await creditgate(
        "ledger", "serve", "--catalog", str(CATALOG), "--redis", redis_url, "--grpc-port", "0"
    )
    assert code == 2, err
    assert "--grpc-port" in err
    assert "--token" in err
    assert "Traceback" not in err
