"""In-process sidecars on loopback, called over real gRPC (and HTTP, for parity), on the suite's
own valkey-server.

Expected amounts are computed here with ``Decimal`` from ``policies/example.yaml`` as written,
never with the sidecar's own pricing code. This suite imports nothing from ``tests/http``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from typing import Any

import aiohttp
import grpc
import pytest
import yaml

from sidecar.client import GrpcClient, HttpClient
from sidecar.embedded import EmbeddedRedis
from sidecar.rpc.gen.creditgate.v1 import creditgate_pb2 as pb
from sidecar.rpc.gen.creditgate.v1 import creditgate_pb2_grpc as pb_grpc
from sidecar.server import Sidecar
from sidecar.store.layout import Layout
from sidecar.store.redis_store import RedisStore
from sidecar.wire import GrantRequest, SetBudgetRequest, UpsertCustomerRequest
from tests.conftest import EXAMPLE, StartSidecar, sidecars

ADMIN_TOKEN = "g" * 32
NANO = Decimal("0.000000001")
NANOS_PER_CREDIT = 10**9
CATALOG: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
AUTH = (("authorization", f"Bearer {ADMIN_TOKEN}"),)


def events_key(customer: str) -> str:
    """The customer's shard's event stream, in the default layout the suite's Redis gets."""
    return Layout().stream_of(customer)


def price(model: str, kind: str) -> Decimal:
    """Credits per unit of ``kind`` on ``model``, straight from the example catalog."""
    return Decimal(CATALOG["models"][model]["prices_per_million"][kind]) / 10**6


def cost(model: str, units: dict[str, int]) -> Decimal:
    """Exact cost of ``units`` on ``model`` in credits (not rounded)."""
    return sum((price(model, kind) * count for kind, count in units.items()), Decimal(0))


def credits(amount: Decimal | int | str) -> str:
    """An amount as the wire writes it: a decimal string with exactly 9 fractional digits."""
    value = Decimal(amount)
    assert value == value.quantize(NANO), f"{amount} is finer than a nano-credit"
    return f"{value.quantize(NANO):f}"


def nanos(amount: Decimal | int | str) -> int:
    """An exact amount of credits as integer nano-credits (what the proto carries)."""
    value = Decimal(amount) * NANOS_PER_CREDIT
    assert value == value.to_integral_value(), f"{amount} is finer than a nano-credit"
    return int(value)


def floor_nano(amount: Decimal) -> Decimal:
    return amount.quantize(NANO, rounding=ROUND_FLOOR)


def plan_grant(plan: str) -> Decimal:
    """The credits a plan grants on creation, from the catalog."""
    return sum((Decimal(g["amount"]) for g in CATALOG["plans"][plan]["grants"]), Decimal(0))


@pytest.fixture
async def start_sidecar(
    redis_server: EmbeddedRedis, store: RedisStore
) -> AsyncIterator[StartSidecar]:
    """Sidecars on the (flushed) suite server; all stop at teardown."""
    async with sidecars(redis_server.url, ADMIN_TOKEN) as start:
        yield start


@pytest.fixture
async def sidecar(start_sidecar: StartSidecar) -> Sidecar:
    return await start_sidecar()


def grpc_target(sidecar: Sidecar) -> str:
    return f"127.0.0.1:{sidecar.grpc_port}"


def grpc_admin_target(sidecar: Sidecar) -> str:
    return f"127.0.0.1:{sidecar.grpc_admin_port}"


@pytest.fixture
async def grpc_client(sidecar: Sidecar) -> AsyncIterator[GrpcClient]:
    async with GrpcClient(
        grpc_target(sidecar), admin_target=grpc_admin_target(sidecar), admin_token=ADMIN_TOKEN
    ) as client:
        yield client


@pytest.fixture
async def http_client(sidecar: Sidecar) -> AsyncIterator[HttpClient]:
    async with HttpClient(
        f"http://127.0.0.1:{sidecar.port}",
        admin_url=f"http://127.0.0.1:{sidecar.admin_port}",
        admin_token=ADMIN_TOKEN,
    ) as client:
        yield client


@dataclass
class Clients:
    """The typed clients of both transports, on one sidecar."""

    http: HttpClient
    grpc: GrpcClient


@pytest.fixture
async def clients(http_client: HttpClient, grpc_client: GrpcClient) -> Clients:
    return Clients(http=http_client, grpc=grpc_client)


@pytest.fixture
async def raw_http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@dataclass
class Stubs:
    """Raw generated stubs on their own grpc.aio channels."""

    public: Any
    admin: Any


@pytest.fixture
async def stubs(sidecar: Sidecar) -> AsyncIterator[Stubs]:
    async with (
        grpc.aio.insecure_channel(grpc_target(sidecar)) as public,
        grpc.aio.insecure_channel(grpc_admin_target(sidecar)) as admin,
    ):
        yield Stubs(
            public=pb_grpc.CreditgateServiceStub(public),  # type: ignore[no-untyped-call]
            admin=pb_grpc.CreditgateAdminServiceStub(admin),  # type: ignore[no-untyped-call]
        )


async def seed(
    client: GrpcClient | HttpClient,
    customer: str = "acme",
    *,
    plan: str = "pro",
    grants: dict[str, str] | None = None,
    budgets: list[SetBudgetRequest] | None = None,
) -> None:
    """Create a customer through ``client``'s admin operations, with grants and budgets."""
    upserted = await client.upsert_customer(customer, UpsertCustomerRequest(plan=plan))
    assert (upserted.customer, upserted.plan) == (customer, plan)
    for credit_type, amount in (grants or {}).items():
        granted = await client.grant(
            customer,
            GrantRequest(credit_type=credit_type, amount=amount, idempotency_key=credit_type),
        )
        assert (granted.result, granted.amount) == ("granted", credits(amount))
    for budget in budgets or []:
        await client.set_budget(customer, budget)


@dataclass
class Moved:
    """What "nothing moved" compares: the customer as GetBalance shows it, and its stream."""

    balance: pb.GetBalanceResponse
    events: int


async def snapshot(stubs: Stubs, store: RedisStore, customer: str = "acme") -> Moved:
    balance = await stubs.public.GetBalance(pb.GetBalanceRequest(customer=customer), timeout=5)
    return Moved(balance=balance, events=await store.client.xlen(events_key(customer)))
