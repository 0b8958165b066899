"""``creditgate environment copy``: a sandbox seeded from live, on the same Redis.

Copies the catalog file and every customer of one environment into another: plan, contract
and budgets, through the same service operations an operator calls (validated, audited, and
streamed to the target's ledger; the plan's recurring grants are issued there as for any new
customer). Balances stay behind unless asked for; then each unexpired bucket is granted in the
target, once (idempotent by the source grant's id), with its credit type, priority and expiry;
the plan's grants of the month, which the target issued itself, are not granted again.
The source is only read.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import msgspec

from sidecar.catalog import Catalog, load_catalog
from sidecar.catalog.spec import ContractSpec
from sidecar.errors import SettingsError
from sidecar.money import format_credits
from sidecar.service import Service
from sidecar.store import layout
from sidecar.store.redis_store import RedisStore
from sidecar.wire import (
    BudgetScope,
    BudgetState,
    GrantRequest,
    SetBudgetRequest,
    UpsertCustomerRequest,
)

__all__ = ["Copied", "copy_catalog", "copy_environment"]


class Copied(msgspec.Struct, kw_only=True):
    customers: int = 0
    budgets: int = 0
    grants: int = 0


def copy_catalog(source: str, target: str) -> Catalog:
    """Write ``source``'s catalog to ``target`` atomically (validated first)."""
    catalog = load_catalog(source)
    text = Path(source).read_bytes()
    folder = os.path.dirname(os.path.abspath(target))
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".catalog-")
    with os.fdopen(handle, "wb") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, target)
    return catalog


async def customers_of(store: RedisStore) -> list[str]:
    """Every customer of ``store``'s environment, in id order (one pipelined read)."""
    keys = store.layout
    async with store.client.pipeline(transaction=False) as pipe:
        for shard in range(keys.shards):
            pipe.smembers(keys.shard_key(shard, layout.CUSTOMERS))
        replies: list[Any] = await pipe.execute()
    return sorted(member.decode() for members in replies for member in members)


def _budget_request(budget: BudgetState) -> SetBudgetRequest:
    """The request that sets ``budget`` (its scope ``customer`` or ``<kind>:<id>``)."""
    kind, _, node = budget.scope.partition(":")
    scope = BudgetScope(**{kind: node}) if node else BudgetScope()
    return SetBudgetRequest(limit=budget.limit, scope=scope, period=budget.period, mode=budget.mode)


async def copy_environment(
    redis_url: str, source: str, target: str, catalog: Catalog, *, balances: bool
) -> Copied:
    """Copy ``source``'s customers into ``target`` (both environments of ``redis_url``)."""
    if source == target:
        raise SettingsError(f"--from and --to are both {source!r}: name two environments")
    reader = RedisStore(redis_url, environment=source)
    writer = RedisStore(redis_url, environment=target)
    copied = Copied()
    try:
        await reader.agree_layout()
        await writer.agree_layout()
        origin, service = Service(reader, catalog), Service(writer, catalog)
        for customer in await customers_of(reader):
            stored = await reader.get_customer(customer)
            if stored is None:
                continue
            overrides = (
                msgspec.json.decode(stored.overrides, type=ContractSpec)
                if stored.overrides
                else None
            )
            request = UpsertCustomerRequest(plan=stored.plan, overrides=overrides)
            await service.upsert_customer(customer, request)
            copied.customers += 1
            state = await origin.balance(customer)
            for budget in state.budgets:
                await service.set_budget(customer, _budget_request(budget))
                copied.budgets += 1
            if balances:
                # The plan's grants of this month are the target's own (issued by the upsert,
                # under the same ids): not granted twice.
                issued = {b.grant_id for b in (await service.balance(customer)).buckets}
                for bucket in state.buckets:
                    if bucket.grant_id in issued or bucket.amount == format_credits(0):
                        continue
                    grant = GrantRequest(
                        credit_type=bucket.credit_type, amount=bucket.amount,
                        idempotency_key=f"copy-{source}-{bucket.grant_id}",
                        priority=bucket.priority, expires_at=bucket.expires_at,
                    )  # fmt: skip
                    await service.grant(customer, grant)
                    copied.grants += 1
    finally:
        await reader.close()
        await writer.close()
    return copied
