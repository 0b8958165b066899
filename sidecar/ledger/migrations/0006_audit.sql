-- 0006: the audit trail. Every admin change (customers, grants, budgets, proxy keys, scoped
-- tokens, alerts), with who made it: the operator, or the id of the scoped admin token used
-- (sidecar/service/audit.py). A customer's own admins read their scope of it.
CREATE TABLE audit_log (
    event_id     TEXT        PRIMARY KEY,
    customer     TEXT        NOT NULL,
    actor        TEXT        NOT NULL,        -- operator, or at_<id>
    action       TEXT        NOT NULL,        -- budget.set, proxy_key.issue, token.revoke, ...
    team         TEXT,                        -- the team the change is inside of, if one
    detail       JSONB       NOT NULL,
    ts           TIMESTAMPTZ NOT NULL,
    stream_ms    BIGINT      NOT NULL,
    stream_seq   BIGINT      NOT NULL,
    recorded_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_customer ON audit_log (customer, ts);
CREATE TRIGGER audit_log_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();
