-- 0011: a refund returns a call's overage too (what no credit covered), after its credits, and
-- gives the budgets it counted in their room back.
-- corrections.uncovered_nanos: the part of amount_nanos that went back to no grant, and that the
-- invoice owes back; its ledger entry is a refund of no credit type and no grant. NULL on the
-- refunds made before: they returned credits only and left the budgets' counters as they were,
-- so the ledger's expected state does not subtract them.
ALTER TABLE corrections ADD COLUMN uncovered_nanos BIGINT;
ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_check;
ALTER TABLE ledger_entries ADD CONSTRAINT ledger_entries_credit_type CHECK (
    (credit_type IS NULL) = (kind = 'overage' OR (kind = 'refund' AND grant_id IS NULL))
);
