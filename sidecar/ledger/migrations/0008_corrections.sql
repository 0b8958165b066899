-- 0008: corrections, as new entries that name what they correct (sidecar/ledger/corrections.py):
-- a refund of a committed call (credits back to the grants it burned) or a debit adjustment.
-- Their money moves are ledger_entries of kind refund / adjustment; nothing is updated.
CREATE TABLE corrections (
    event_id     TEXT        PRIMARY KEY,
    customer     TEXT        NOT NULL,
    kind         TEXT        NOT NULL CHECK (kind IN ('refund', 'adjustment')),
    corrects     TEXT,                        -- the call's event id (a refund), or a reference
    reason       TEXT        NOT NULL,
    actor        TEXT        NOT NULL,        -- operator, or the token that asked
    amount_nanos BIGINT      NOT NULL,        -- signed: a refund adds, a debit takes
    moves        JSONB       NOT NULL,        -- [{grant_id, credit_type, amount}], signed
    ts           TIMESTAMPTZ NOT NULL,
    stream_ms    BIGINT      NOT NULL,
    stream_seq   BIGINT      NOT NULL,
    recorded_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX corrections_customer ON corrections (customer, ts);
CREATE INDEX corrections_corrects ON corrections (corrects);
CREATE TRIGGER corrections_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON corrections
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();
