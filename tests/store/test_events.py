"""Invariants 4 and 5: every commit appends one fully attributed event in the same script."""

from __future__ import annotations

import json

import pytest

from sidecar.service import Service
from sidecar.store.redis_store import RedisStore
from sidecar.wire import CommitRequest, ReserveRequest
from tests.conftest import Setup

pytestmark = pytest.mark.redis


async def test_debit_event_names_everything(
    service: Service, store: RedisStore, setup_customer: Setup
) -> None:
    await setup_customer(grants={"paid": "1"}, budgets=[({"team": "eng"}, "month", "1")])
    hold = await service.reserve(
        ReserveRequest(
            customer="acme",
            team="eng",
            user="u-17",
            agent="researcher",
            session="run-8841",
            feature="chat",
            model="small",
            units={"input_tokens": 1200, "output_tokens": 800},
            idempotency_key="req-5f2c",
            tags={"workflow": "summarize"},
        )
    )
    done = await service.commit(
        CommitRequest(
            reservation_id=hold.reservation_id or "",
            units={"input_tokens": 1180, "output_tokens": 312},
        )
    )
    entries = await store.client.xrange(store.layout.stream_of("acme"))
    kinds = [fields[b"kind"].decode() for _, fields in entries]
    # Each admin change is followed by its audit entry (service/audit.py).
    assert kinds == ["customer", "audit", "grant", "audit", "budget", "audit", "debit"]
    event = {k.decode(): v.decode() for k, v in entries[-1][1].items()}
    assert {
        k: event[k]
        for k in (
            "customer",
            "team",
            "user",
            "agent",
            "session",
            "feature",
            "model",
            "request_id",
            "event_id",
            "catalog_version",
        )
    } == {
        "customer": "acme",
        "team": "eng",
        "user": "u-17",
        "agent": "researcher",
        "session": "run-8841",
        "feature": "chat",
        "model": "small",
        "request_id": "req-5f2c",
        "event_id": hold.reservation_id,
        "catalog_version": service.catalog.version,
    }
    assert json.loads(event["units"]) == {"input_tokens": 1180, "output_tokens": 312}
    assert json.loads(event["tags"]) == {"workflow": "summarize"}
    assert event["cost"] == "364200"  # nano-credits: 1180 * 150 + 312 * 600
    assert done.cost == "0.000364200"
    assert json.loads(event["burned"]) == [
        {"grant_id": done.burned[0].grant_id, "credit_type": "paid", "amount": "364200"}
    ]
