"""Audit entry ids (service/audit.py): one per change, so that the ledger, which keeps one row
per id, drops only retries."""

from __future__ import annotations

from sidecar.access import OPERATOR
from sidecar.service.audit import audit_fields


def test_the_same_change_for_two_customers_at_once_is_two_entries() -> None:
    detail = {"scope": "customer", "period": "month", "thresholds": ["80%"]}
    ids = {
        audit_fields(OPERATOR, customer, "alerts.set", detail, 1_765_000_000_000)["event_id"]
        for customer in ("acme", "globex")
    }
    assert len(ids) == 2


def test_a_change_that_happens_once_names_one_entry_however_often_it_is_retried() -> None:
    first = audit_fields(OPERATOR, "acme", "proxy_key.revoke", {"id": "pk_1"}, 1, once="pk_1")
    retry = audit_fields(OPERATOR, "acme", "proxy_key.revoke", {"id": "pk_1"}, 2, once="pk_1")
    assert first["event_id"] == retry["event_id"]
