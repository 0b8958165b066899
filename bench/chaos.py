"""The chaos group: real faults under load, and what they cost in money.

    python -m bench.chaos [--outage-s 30]

Each scenario prints calls answered, answered in fallback, nano-credits lost and double-counted
(both must be 0) and the recovery time. Scenarios:

* ``redis-down``: valkey unreachable (a loopback proxy closes every connection) for
  ``outage_s`` under load, with one ``allow`` feature (support_agent, overdraft 10 credits)
  and one ``deny`` feature (chat) of the example catalog. Money is checked against Redis
  itself once the spool has drained: every committed call's cost, summed with Decimal, equals
  what the customers' balances lost, and each committed call has exactly one debit event.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from tempfile import TemporaryDirectory

from bench.faults import FaultProxy
from sidecar.catalog import load_catalog
from sidecar.embedded import EmbeddedRedis
from sidecar.service import Service
from sidecar.service.spool import Spool
from sidecar.store.redis_store import RedisStore
from sidecar.wire import CommitRequest, GrantRequest, ReserveRequest, UpsertCustomerRequest

ROOT = Path(__file__).resolve().parents[1]
CATALOG = ROOT / "policies" / "example.yaml"
CUSTOMERS = [f"chaos-{i}" for i in range(4)]
DEADLINE_S = 0.1
PACE_S = 0.01
"""Each worker's pause between calls: about 100 model calls per second in all."""
DRAIN_TIMEOUT_S = 60.0
NANOS = Decimal(1_000_000_000)


@dataclass
class Outcome:
    scenario: str
    answered: int = 0
    """Reserves answered allowed and then committed."""
    fallback: int = 0
    """Of those, decided in fallback."""
    refused: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    lost_nanos: int = 0
    doubled_nanos: int = 0
    recovery_s: float = 0.0
    worst_overdraft: Decimal = Decimal(0)
    """The most one customer spent in fallback (cap: the feature's overdraft)."""

    def lines(self) -> list[str]:
        refused = ", ".join(f"{k} {v}" for k, v in sorted(self.refused.items())) or "none"
        return [
            f"{self.scenario}: answered {self.answered}, in fallback {self.fallback}, "
            f"refused ({refused})",
            f"  nano-credits lost {self.lost_nanos}, double-counted {self.doubled_nanos}, "
            f"recovery {self.recovery_s:.2f} s, most spent in fallback by one customer "
            f"{self.worst_overdraft} credits",
        ]


async def _seed(service: Service) -> None:
    for customer in CUSTOMERS:
        await service.upsert_customer(customer, UpsertCustomerRequest(plan="enterprise"))
        await service.grant(
            customer, GrantRequest(credit_type="paid", amount="1000", idempotency_key="seed")
        )


async def _funds(service: Service) -> dict[str, Decimal]:
    out = {}
    for customer in CUSTOMERS:
        balance = await service.balance(customer)
        out[customer] = sum((Decimal(b.amount) for b in balance.buckets), Decimal(0))
    return out


async def _worker(
    sidecar: Service, customer: str, stop: asyncio.Event, outcome: Outcome,
    costs: dict[str, Decimal], spent_in_fallback: dict[str, Decimal],
) -> None:  # fmt: skip
    n = 0
    while not stop.is_set():
        n += 1
        ticket = n % 2 == 0
        request = ReserveRequest(
            customer=customer,
            feature="support_agent" if ticket else "chat",
            model=None if ticket else "gpt-4o-mini",
            units={"tickets_resolved": 1} if ticket else {"input_tokens": 2000},
            idempotency_key=f"{customer}-{n}",
        )
        held = await sidecar.reserve(request)
        if not held.allowed:
            outcome.refused[f"{request.feature}:{held.reason}"] += 1
        else:
            usage = {"tickets_resolved": 1} if ticket else {"input_tokens": 1500}
            rid = held.reservation_id or ""
            done = await sidecar.commit(CommitRequest(reservation_id=rid, units=usage))
            outcome.answered += 1
            costs[rid] = Decimal(done.cost)
            if done.decided_by == "fallback":
                outcome.fallback += 1
            if held.decided_by == "fallback":  # what counts against the overdraft
                spent_in_fallback[customer] += Decimal(done.cost)
        await asyncio.sleep(PACE_S)


async def redis_down(outage_s: float) -> Outcome:
    """Redis unreachable for ``outage_s`` under load; the money checked once it is back."""
    outcome = Outcome(f"redis-down {outage_s:g} s")
    catalog = load_catalog(CATALOG)
    with EmbeddedRedis() as redis, TemporaryDirectory() as spool_dir:
        truth = RedisStore(redis.url)
        proxy = await FaultProxy(redis.port).start()
        store = RedisStore(proxy.url, timeout_s=DEADLINE_S, deadline_s=DEADLINE_S)
        try:
            await truth.agree_layout()
            await store.agree_layout()
            admin = Service(truth, catalog)
            await _seed(admin)
            before = await _funds(admin)
            sidecar = Service(store, catalog, spool=Spool(spool_dir))
            costs: dict[str, Decimal] = {}
            spent_in_fallback: dict[str, Decimal] = defaultdict(Decimal)
            stop = asyncio.Event()
            workers = [
                asyncio.create_task(_worker(sidecar, c, stop, outcome, costs, spent_in_fallback))
                for c in CUSTOMERS
            ]
            await asyncio.sleep(1.0)
            proxy.down(True)
            await asyncio.sleep(outage_s)
            proxy.down(False)
            back = time.monotonic()
            deadline = back + DRAIN_TIMEOUT_S
            while len(sidecar.fallback.spool) and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            outcome.recovery_s = time.monotonic() - back
            await asyncio.sleep(1.0)
            stop.set()
            await asyncio.gather(*workers)
            await sidecar.close()
            after = await _funds(admin)
            spent = sum(before[c] - after[c] for c in CUSTOMERS)
            expected = sum(costs.values(), Decimal(0))
            difference = int((spent - expected) * NANOS)
            outcome.lost_nanos = max(0, -difference)
            outcome.doubled_nanos = max(0, difference)
            debits: dict[str, int] = defaultdict(int)
            for customer in CUSTOMERS:
                for _, f in await truth.client.xrange(truth.layout.stream_of(customer)):
                    if f[b"kind"] == b"debit":
                        debits[f[b"event_id"].decode()] += 1
            for rid, cost in costs.items():
                count = debits.get(rid, 0)
                if count == 0:
                    outcome.lost_nanos += int(cost * NANOS)
                elif count > 1:
                    outcome.doubled_nanos += int(cost * NANOS) * (count - 1)
            outcome.worst_overdraft = max(spent_in_fallback.values(), default=Decimal(0))
        finally:
            await proxy.stop()
            await store.close()
            await truth.close()
    return outcome


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__)
    parser.add_argument("--outage-s", type=float, default=30.0)
    args = parser.parse_args()
    for line in asyncio.run(redis_down(args.outage_s)).lines():
        print(line, flush=True)


if __name__ == "__main__":
    main()
