-- 0004: the generations of Redis state the ledger has known (ledger/generation.py), and what
-- a commit's hold had left over (for the answer a retried commit gets after a rebuild).

-- seen: the ledger found this generation's markers in Redis; lost: Redis no longer had the
-- state of it (restarted empty, flushed, rolled back), detail says after which event;
-- rebuilt: `creditgate ledger rebuild --all` restored the ledger's state as this generation.
CREATE TABLE store_generations (
    entry_id    BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    generation  TEXT        NOT NULL,
    state       TEXT        NOT NULL CHECK (state IN ('seen', 'lost', 'rebuilt')),
    shards      INTEGER     NOT NULL CHECK (shards > 0),
    detail      TEXT        NOT NULL DEFAULT '',
    recorded_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TRIGGER store_generations_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON store_generations
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();

ALTER TABLE usage_events ADD COLUMN released_nanos BIGINT CHECK (released_nanos >= 0);
COMMENT ON COLUMN usage_events.released_nanos IS
    'what the hold had left over at commit; NULL for events appended before 0.3';
