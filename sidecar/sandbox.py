"""``creditgate environment copy``: a sandbox seeded from live, on the same Redis.

Copies the catalog file and every customer of one environment into another: plan, contract
and budgets, through the same service operations an operator calls (validated, audited, and
streamed to the target's ledger; the plan's recurring grants are issued there as for any new
customer). Balances stay behind unless asked for; then each unexpired bucket is granted in the
target, once (idempotent by the source grant's id), with its credit type, priority and expiry;
the plan's grants of the month, which the target issued itself, are not granted again.
The source is only read (no plan grant is issued there, nothing expires); a copy never
writes live.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from sidecar.catalog import Catalog, load_catalog
from sidecar.catalog.files import replace_file
from sidecar.catalog.spec import ContractSpec
from sidecar.engine.burn import parse_burn_key
from sidecar.environment import LIVE
from sidecar.errors import SettingsError
from sidecar.money import format_credits
from sidecar.service import Service
from sidecar.store import layout
from sidecar.store.layout import Layout
from sidecar.store.records import BalanceState, BudgetRow
from sidecar.store.redis_store import RedisStore
from sidecar.times import format_time
from sidecar.wire import (
    BudgetScope,
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
    replace_file(target, Path(source).read_text(encoding="utf-8"))
    return catalog


async def customers_of(store: RedisStore) -> list[str]:
    """Every customer of ``store``'s environment, in id order (one pipelined read)."""
    keys = store.layout
    async with store.client.pipeline(transaction=False) as pipe:
        for shard in range(keys.shards):
            pipe.smembers(keys.shard_key(shard, layout.CUSTOMERS))
        replies: list[Any] = await pipe.execute()
    return sorted(member.decode() for members in replies for member in members)


def _budget_request(row: BudgetRow) -> SetBudgetRequest:
    """The request that sets the budget of ``row`` (its scope ``customer`` or
    ``<kind>:<id>``)."""
    kind, _, node = row.scope.partition(":")
    scope = BudgetScope(**{kind: node}) if node else BudgetScope()
    limit = format_credits(row.limit)
    return SetBudgetRequest(limit=limit, scope=scope, period=row.period, mode=row.mode)


def _grants(state: BalanceState, source: str, now_ms: int) -> list[tuple[str, GrantRequest]]:
    """Each unexpired bucket of ``state``: its grant id, and a grant of what is left in it."""
    out = []
    for member, amount in sorted(state.buckets.items()):
        priority, expires_at_ms, _created, credit_type, grant_id = parse_burn_key(member)
        if amount <= 0 or (expires_at_ms is not None and expires_at_ms <= now_ms):
            continue
        out.append((grant_id, GrantRequest(
            credit_type=credit_type, amount=format_credits(amount), priority=priority,
            idempotency_key=f"copy-{source}-{grant_id}",
            expires_at=None if expires_at_ms is None else format_time(expires_at_ms),
        )))  # fmt: skip
    return out


async def _source_layout(store: RedisStore) -> None:
    """The source's recorded layout, read without writing (agreeing would create one)."""
    keys = store.layout
    shards = await store.client.hget(keys.layout_key, "shards")
    if shards is None:
        raise SettingsError(
            f"--from: environment {keys.environment!r} has no deployment on this Redis "
            f"({keys.layout_key} is absent)"
        )
    store.layout = Layout(int(shards), keys.environment)


async def copy_environment(
    redis_url: str, source: str, target: str, catalog: Catalog, *, balances: bool
) -> Copied:
    """Copy ``source``'s customers into ``target`` (both environments of ``redis_url``);
    ``source`` is only read, with reads that issue nothing (no plan grant, no expiry)."""
    if source == target:
        raise SettingsError(f"--from and --to are both {source!r}: name two environments")
    if target == LIVE:
        raise SettingsError(
            f"--to: {LIVE} is never written by a copy: seed a sandbox from live, not live "
            "from a sandbox"
        )
    reader = RedisStore(redis_url, environment=source)
    writer = RedisStore(redis_url, environment=target)
    copied = Copied()
    try:
        await _source_layout(reader)
        await writer.agree_layout()
        service = Service(writer, catalog)
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
            now = service.clock()
            state = await reader.balance_state(customer, now)
            for row in state.budgets:
                await service.set_budget(customer, _budget_request(row))
                copied.budgets += 1
            if balances:
                # The plan's grants of this month are the target's own (issued by the upsert,
                # under the same ids): not granted twice.
                issued = {b.grant_id for b in (await service.balance(customer)).buckets}
                for grant_id, grant in _grants(state, source, now):
                    if grant_id in issued:
                        continue
                    await service.grant(customer, grant)
                    copied.grants += 1
    finally:
        await reader.close()
        await writer.close()
    return copied
