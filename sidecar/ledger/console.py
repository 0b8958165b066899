"""The usage console: one server-rendered page per customer, for a scoped token's holder and
for the operator. Pure: it renders the answers of the query functions the JSON API serves
(ledger/queries.py), so every number on it is one the API gives; no script, no build step.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from html import escape

import msgspec

from sidecar.access import Caller
from sidecar.ledger.wire import (
    AlertsAnswer,
    AuditAnswer,
    BalanceAnswer,
    BudgetsAnswer,
    InvoicePreview,
    UsageAnswer,
)

__all__ = ["GROUPS", "render_console"]

GROUPS = ("team", "user", "agent", "model", "feature")
COLORS = ("#2563eb", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#14b8a6", "#f97316", "#64748b")
CHART_W, CHART_H = 900, 220

_STYLE = """
body{font:14px system-ui,sans-serif;margin:24px;color:#0f172a;background:#f8fafc}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 8px}
.muted{color:#64748b}section{background:#fff;border:1px solid #e2e8f0;border-radius:8px;
padding:12px 16px;margin-bottom:16px}table{border-collapse:collapse;width:100%}
td,th{padding:4px 8px;border-bottom:1px solid #e2e8f0;text-align:left}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.bar{background:#e2e8f0;border-radius:4px;height:10px;width:160px;display:inline-block}
.bar i{display:block;height:10px;border-radius:4px;background:#2563eb}
.over i{background:#ef4444}nav a{margin-right:8px}
"""


def _e(value: object) -> str:
    return escape("" if value is None else str(value))


def _table(head: list[str], rows: list[list[str]], numeric: set[int]) -> str:
    th = "".join(f'<th class="{"n" if i in numeric else ""}">{_e(h)}</th>'
                 for i, h in enumerate(head))  # fmt: skip
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="{"n" if i in numeric else ""}">{cell}</td>' for i, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><tr>{th}</tr>{body or '<tr><td class=muted>none</td></tr>'}</table>"


def _chart(usage: UsageAnswer, group: str) -> str:
    """Stacked bars of cost per day, one color per group."""
    days: dict[str, dict[str, Decimal]] = defaultdict(dict)
    names: list[str] = []
    for row in usage.rows:
        name = row.group.get(group) or "(none)"
        if name not in names:
            names.append(name)
        days[row.bucket or ""][name] = Decimal(row.cost)
    if not days:
        return '<p class="muted">No usage in this range.</p>'
    top = max(sum(v.values()) for v in days.values()) or Decimal(1)
    width = CHART_W / len(days)
    bars = []
    for i, (day, costs) in enumerate(sorted(days.items())):
        y = Decimal(CHART_H)
        for name in names:
            cost = costs.get(name, Decimal(0))
            height = Decimal(CHART_H) * cost / top
            y -= height
            color = COLORS[names.index(name) % len(COLORS)]
            bars.append(
                f'<rect x="{i * width + 2:.1f}" y="{y:.1f}" width="{max(width - 4, 1):.1f}" '
                f'height="{height:.1f}" fill="{color}"><title>{_e(day[:10])} {_e(name)}: '
                f"{_e(cost)} credits</title></rect>"
            )
    legend = " ".join(
        f'<span style="color:{COLORS[i % len(COLORS)]}">&#9632;</span> {_e(name)}'
        for i, name in enumerate(names)
    )
    return (
        f'<svg role="img" aria-label="cost per day by {_e(group)}" width="{CHART_W}" '
        f'height="{CHART_H}" viewBox="0 0 {CHART_W} {CHART_H}">{"".join(bars)}</svg>'
        f'<p class="muted">Highest day: {_e(top)} credits. {legend}</p>'
    )


def _bar(used: str, limit: str) -> str:
    share = Decimal(used) / Decimal(limit) if Decimal(limit) else Decimal(1)
    width = min(share, Decimal(1)) * 100
    over = " over" if share >= 1 else ""
    return f'<span class="bar{over}"><i style="width:{width:.0f}%"></i></span> {share:.0%}'


def render_console(
    caller: Caller,
    group: str,
    balance: BalanceAnswer,
    usage: UsageAnswer,
    budgets: BudgetsAnswer,
    alerts: AlertsAnswer,
    audit: AuditAnswer,
    invoice: InvoicePreview | None,
    rules: list[str],
) -> str:
    """The page of one customer (``invoice`` None: the caller's scope is a team, which does
    not see the whole customer's invoice)."""
    customer = balance.customer
    team = f", team {_e(caller.team)}" if caller.team else ""
    links = " ".join(f'<a href="?customer={_e(customer)}&amp;group_by={g}">{g}</a>' for g in GROUPS)
    credit_rows = [
        [_e(c.credit_type), _e(c.granted), _e(c.used), _e(c.expired), _e(c.available)]
        for c in balance.credit_types
    ]
    usage_rows = [
        [_e(r.bucket and r.bucket[:10]), _e(r.group.get(group) or "(none)"), _e(r.events),
         _e(r.cost)]
        for r in usage.rows
    ]  # fmt: skip
    budget_rows = [
        [_e(b.scope), _e(b.period), _e(b.mode), _e(b.used), _e(b.limit), _bar(b.used, b.limit)]
        for b in budgets.budgets
    ]
    alert_rows = [
        [_e(a.at), _e(a.scope), _e(a.period), _e(a.rule), _e(a.used), _e(a.limit)]
        for a in alerts.alerts
    ]
    audit_rows = [
        [
            _e(a.at),
            _e(a.actor),
            _e(a.action),
            _e(a.team),
            _e(msgspec.json.encode(a.detail).decode()),
        ]
        for a in audit.entries
    ]
    invoice_html = '<p class="muted">The invoice is the whole customer\'s.</p>'
    if invoice is not None:
        lines = [[_e(line.model), _e(line.feature), _e(line.events), _e(line.amount)]
                 for line in invoice.lines]  # fmt: skip
        invoice_html = _table(["model", "feature", "calls", "amount"], lines, {2, 3}) + (
            f"<p>Subtotal {_e(invoice.subtotal)} credits; overage {_e(invoice.overage)}.</p>"
        )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Creditgate: {_e(customer)}</title>
<style>{_STYLE}</style></head><body>
<h1>Customer <span id="customer">{_e(customer)}</span>{team}</h1>
<p class="muted">Signed in as {_e(caller.actor)} ({_e(caller.role)}). Usage {_e(usage.start)} to
{_e(usage.end)}; every figure here is one the ledger API answers.</p>
<section><h2>Balance</h2><p>Available: <b>{_e(balance.available)}</b> credits;
overage {_e(balance.overage)}.</p>
{_table(["credit type", "granted", "used", "expired", "available"], credit_rows, {1, 2, 3, 4})}
</section>
<section><h2>Usage by {_e(group)}</h2><nav>Group by: {links}</nav>{_chart(usage, group)}
{_table(["day", group, "calls", "cost"], usage_rows, {2, 3})}</section>
<section><h2>Budgets</h2>
{_table(["scope", "period", "mode", "used", "limit", "use"], budget_rows, {3, 4})}
<p class="muted">Alert thresholds of the plan: {_e(", ".join(rules) or "none")}.</p></section>
<section><h2>Alerts fired</h2>
{_table(["at", "scope", "period", "threshold", "used", "limit"], alert_rows, {4, 5})}</section>
<section><h2>Invoice preview (this month)</h2>{invoice_html}</section>
<section><h2>Audit trail</h2>
{_table(["at", "actor", "action", "team", "detail"], audit_rows, set())}</section>
</body></html>"""
