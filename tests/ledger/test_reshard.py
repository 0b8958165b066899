"""A reshard under load: a customer's slot moves between the nodes of a real cluster, again and
again, while reserves, commits and a ledger worker run; no credit is overspent and no event is
lost or doubled."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
from redis.crc import key_slot

from sidecar.embedded import EmbeddedCluster
from sidecar.ledger.db import Pool
from sidecar.money import parse_credits
from sidecar.service import Service
from sidecar.store.redis_store import RedisStore
from sidecar.wire import CommitRequest, ReserveRequest
from tests.conftest import Setup
from tests.ledger.conftest import drain, worker
from tests.ledger.test_exactly_once import ledger_counts

pytestmark = [pytest.mark.redis, pytest.mark.postgres]


@pytest.fixture(scope="module")
def moving_cluster() -> Iterator[EmbeddedCluster]:
    """A cluster of its own: this test moves its slots."""
    with EmbeddedCluster(3) as cluster:
        yield cluster


@pytest.fixture
def redis_url(moving_cluster: EmbeddedCluster) -> str:
    return moving_cluster.url


def _lua_errors(store: RedisStore) -> float:
    return sum(
        sample.value
        for family in store.metrics.registry.collect()
        if family.name == "creditgate_lua_errors"
        for sample in family.samples
        if sample.name.endswith("_total")
    )


async def test_moving_the_slot_while_calls_run_overspends_nothing_and_loses_no_event(
    store: RedisStore, pool: Pool, service: Service, setup_customer: Setup,
    moving_cluster: EmbeddedCluster,
) -> None:  # fmt: skip
    await setup_customer(grants={"paid": "1"})
    before = parse_credits((await service.balance("acme")).balance, "balance")
    slot = key_slot(store.layout.customer_key("acme").encode())
    committed: list[int] = []
    holds: set[int] = set()
    denials: dict[str, int] = {}

    async def calls(caller: int) -> None:
        for n in range(10_000):
            hold = await service.reserve(
                ReserveRequest(
                    customer="acme", feature="chat", model="small", team="eng",
                    units={"input_tokens": 1000, "output_tokens": 1000},
                    idempotency_key=f"c{caller}-{n}",
                )
            )  # fmt: skip
            if not hold.allowed:
                denials[hold.reason] = denials.get(hold.reason, 0) + 1
                if hold.reason == "insufficient_credits":
                    return
                continue
            done = await service.commit(
                CommitRequest(
                    reservation_id=hold.reservation_id or "",
                    units={"input_tokens": 500, "output_tokens": 500},
                )
            )
            assert done.result == "committed", done
            holds.add(parse_credits(hold.held or "0", "held"))
            committed.append(parse_credits(done.cost or "0", "cost"))

    moves: list[int] = []
    stop = threading.Event()

    def reshard() -> None:
        while not stop.is_set():
            target = (moving_cluster.owner(slot) + 1) % 3
            moves.append(moving_cluster.move_slot(slot, target))

    ledger_stop = asyncio.Event()
    ingest = asyncio.create_task(worker(store, pool, trim=True).run(ledger_stop))
    mover = asyncio.create_task(asyncio.to_thread(reshard))
    await asyncio.gather(*(calls(i) for i in range(8)))
    stop.set()
    await mover
    ledger_stop.set()
    await ingest

    assert len(moves) >= 3, moves  # the slot moved under load, again and again
    assert min(moves) > 0  # with its keys
    left = parse_credits((await service.balance("acme")).balance, "balance")
    assert sum(committed) == before - left  # exact
    assert 0 <= left < max(holds)  # never past the credits, and every call that fit was served
    assert _lua_errors(store) == 0  # a moving slot is not a script bug
    await drain(worker(store, pool, "w2"))
    usage, _, cost = await ledger_counts(pool)
    assert (usage, cost) == (len(committed), sum(committed))  # none lost, none doubled
