"""A refund of "all that is left" counts what is left where refunds are applied (Redis), not
in the ledger, which may not have stored the last refund yet."""

from __future__ import annotations

import pytest

from sidecar.access import OPERATOR
from sidecar.errors import InvalidInput
from sidecar.ledger.corrections import RefundRequest, refund
from sidecar.ledger.db import Pool
from sidecar.ledger.facts import load_facts
from sidecar.service import Service
from sidecar.store.redis_store import RedisStore
from sidecar.wire import GrantRequest, UpsertCustomerRequest
from tests.conftest import Clock
from tests.ledger.conftest import Call, drain, worker

pytestmark = [pytest.mark.redis, pytest.mark.postgres]


async def test_the_rest_of_a_call_is_what_redis_has_not_refunded_yet(
    store: RedisStore, pool: Pool, service: Service, clock: Clock, call: Call
) -> None:
    await service.upsert_customer("acme", UpsertCustomerRequest(plan="test"))
    await service.grant("acme", GrantRequest(credit_type="paid", amount="10", idempotency_key="g"))
    before = (await service.balance("acme")).balance
    done = await call("acme", units={"input_tokens": 1_000_000})  # 1 credit of small
    assert done.cost == "1.000000000"
    await drain(worker(store, pool))  # the call is in the ledger; the refunds below are not
    async with pool.acquire() as db:
        event = await db.fetchval("SELECT event_id FROM usage_events")

        async def refunded(key: str, amount: str | None = None) -> dict[str, object]:
            request = RefundRequest(idempotency_key=key, event_id=event, reason="x", amount=amount)
            return await refund(db, store, "acme", request, OPERATOR, clock.now_ms)

        assert (await refunded("part", "0.3"))["amount"] == "0.300000000"
        assert await db.fetchval("SELECT count(*) FROM corrections") == 0  # not stored yet
        assert (await refunded("rest"))["amount"] == "0.700000000"
        with pytest.raises(InvalidInput, match="nothing left to refund") as refused:
            await refunded("again")
        assert refused.value.field == "event_id"
    assert (await service.balance("acme")).balance == before  # the whole call back, once


async def test_refunds_from_before_budgets_were_given_back_do_not_lower_the_expected_use(
    store: RedisStore, pool: Pool, service: Service, clock: Clock, call: Call
) -> None:
    """A refund stored before migration 0011 (uncovered_nanos NULL) returned credits only and
    left Redis's counters as they were, so the ledger's expected use keeps it; one made since
    gave its amount back to the counters, and the expected use drops by it."""
    await service.upsert_customer("acme", UpsertCustomerRequest(plan="test"))
    await service.grant("acme", GrantRequest(credit_type="paid", amount="10", idempotency_key="g"))
    await call("acme", units={"input_tokens": 1_000_000})
    await drain(worker(store, pool))

    async def used() -> dict[tuple[str, str], int]:
        async with pool.acquire() as db:
            facts = await load_facts(db, "acme", clock.now_ms)
        return {(row.scope, row.period): row.cost_nanos for row in facts.money}

    before = await used()
    assert before[("customer", "life")] == 10**9
    async with pool.acquire() as db:
        event = await db.fetchval("SELECT event_id FROM usage_events")
        for row_id, uncovered in (("rf_old", None), ("rf_new", 0)):
            await db.execute(
                "INSERT INTO corrections (event_id, customer, kind, corrects, reason, actor, "
                "amount_nanos, moves, uncovered_nanos, ts, stream_ms, stream_seq) VALUES "
                "($1, 'acme', 'refund', $2, 'x', 'operator', 300000000, '[]', $3, now(), 0, 0)",
                row_id, event, uncovered,
            )  # fmt: skip
            if uncovered is None:
                assert await used() == before  # the old refund left the counters
    assert {k: v - 300_000_000 for k, v in before.items()} == await used()
