-- 0010: agent-operated pricing (sidecar/ledger/proposals.py). Pricing tokens (an agent's can
-- propose, an approver's can approve), catalog proposals with their diff and simulation, and
-- each decision that put a catalog in force; all append-only.
CREATE TABLE pricing_tokens (
    id          TEXT        PRIMARY KEY,
    name        TEXT        NOT NULL,        -- the person or agent: the two-person rule's unit
    role        TEXT        NOT NULL CHECK (role IN ('agent', 'approver')),
    hash        TEXT        NOT NULL,        -- SHA-256 of the whole token, hex
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE catalog_proposals (
    id           TEXT        PRIMARY KEY,
    author       TEXT        NOT NULL,
    rationale    TEXT        NOT NULL,
    document     TEXT        NOT NULL,       -- the catalog file as submitted
    version      TEXT        NOT NULL,
    base_version TEXT        NOT NULL,       -- the catalog in force it was diffed against
    diff         JSONB       NOT NULL,
    simulation   JSONB       NOT NULL,       -- the report's window and totals
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE catalog_decisions (
    id                TEXT        PRIMARY KEY,
    proposal_id       TEXT,                   -- none for a rollback
    action            TEXT        NOT NULL CHECK (action IN ('approved', 'rolled_back')),
    actor             TEXT        NOT NULL,
    from_version      TEXT        NOT NULL,
    to_version        TEXT        NOT NULL,
    previous_document TEXT        NOT NULL,   -- the file it replaced: what a rollback restores
    ts                TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX catalog_decisions_approval ON catalog_decisions (proposal_id)
    WHERE action = 'approved';
CREATE TRIGGER pricing_tokens_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON pricing_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER catalog_proposals_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON catalog_proposals
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER catalog_decisions_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON catalog_decisions
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();
