"""The central ledger: consumption shipped from Redis Streams into append-only PostgreSQL.

The sidecar decides; the ledger remembers. Invariants (``tests/ledger`` proves them against a
real Redis and a real PostgreSQL):

* **Exactly once.** An entry is acknowledged (XACK) only after the transaction that stored it
  has committed; what a dead worker left pending is read again (XAUTOCLAIM) and absorbed by
  unique event ids. Several workers may share the consumer group.
* **Append-only, exact.** Ledger rows are never updated or deleted (a trigger refuses it);
  corrections are new entries. Amounts are BIGINT nano-credits, never float.
* **Every movement, attributed.** Debits (one entry per bucket burned), overage, grants,
  expiry write-offs; usage lines with customer, team, user, agent, session, feature, model,
  units, cost, catalog version and request id; budgets and plans as recorded facts.
* **Redis is rebuildable.** ``state.expected_state`` is the one definition of what Redis must
  hold according to the ledger: ``rebuild`` writes it, ``reconcile`` compares with it.

Entry points: ``server.Ledger`` / ``server.serve_ledger`` (``creditgate ledger serve``),
``ingest.Ingestor`` (one worker), ``queries`` (balance, usage, invoice, export),
``rebuild.rebuild_customer``, ``reconcile.reconcile``, ``embedded_pg.EmbeddedPostgres``.
Nothing is imported here, so that ``creditgate`` starts fast for every other command.
"""

__all__: list[str] = []
