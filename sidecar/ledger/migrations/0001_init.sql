-- 0001: the ledger. Every amount is BIGINT nano-credits (10^-9 credit); no float anywhere.
-- Every table here is append-only: rows are inserted once (idempotently, by the id of the
-- event that produced them) and never updated or deleted; a correction is a new entry.

-- Every movement of money, signed from the customer's point of view:
--   grant +amount; debit -amount (one row per bucket burned); expiry -amount (the rest of an
--   expired bucket, written off); overage -amount (consumption no credits covered, billed);
--   refund +amount and adjustment +/-amount (corrections, made by people).
CREATE TABLE ledger_entries (
    entry_id     BIGINT GENERATED ALWAYS AS IDENTITY,  -- the order entries were recorded in
    event_id     TEXT        NOT NULL,
    seq          INTEGER     NOT NULL,
    customer     TEXT        NOT NULL,
    kind         TEXT        NOT NULL
        CHECK (kind IN ('grant', 'debit', 'refund', 'expiry', 'adjustment', 'overage')),
    credit_type  TEXT,
    grant_id     TEXT,
    amount_nanos BIGINT      NOT NULL,
    ts           TIMESTAMPTZ NOT NULL,
    recorded_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, seq),
    CHECK ((kind = 'overage') = (credit_type IS NULL))
);
CREATE INDEX ledger_entries_customer ON ledger_entries (customer);

-- One row per committed call, fully attributed (the debit event of commit.lua).
CREATE TABLE usage_events (
    event_id        TEXT        PRIMARY KEY,  -- the reservation id
    customer        TEXT        NOT NULL,
    team            TEXT,
    user_id         TEXT,
    agent           TEXT,
    session         TEXT,
    feature         TEXT        NOT NULL,
    model           TEXT,
    units           JSONB       NOT NULL,     -- {"input_tokens": 1180, ...}
    cost_nanos      BIGINT      NOT NULL CHECK (cost_nanos >= 0),
    overage_nanos   BIGINT      NOT NULL CHECK (overage_nanos >= 0),   -- cost above the hold
    uncovered_nanos BIGINT      NOT NULL CHECK (uncovered_nanos >= 0), -- cost no bucket paid
    burned          JSONB       NOT NULL,     -- [{"grant_id", "credit_type", "amount"}]
    carry_femtos    BIGINT,                   -- the customer's sub-nano remainder after it
    catalog_version TEXT        NOT NULL,
    request_id      TEXT        NOT NULL,
    tags            JSONB       NOT NULL,
    reserved_at     TIMESTAMPTZ NOT NULL,     -- when the hold was placed: names its periods
    ts              TIMESTAMPTZ NOT NULL,     -- when it was committed
    stream_ms       BIGINT      NOT NULL,     -- its Redis stream entry id, ms-seq: the order
    stream_seq      BIGINT      NOT NULL,     -- of commits of one customer
    recorded_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX usage_events_customer_ts ON usage_events (customer, ts);
-- Rows arrive roughly in time order: a BRIN index serves time ranges over every customer
-- (exports) for almost no cost at ingest.
CREATE INDEX usage_events_ts ON usage_events USING brin (ts);

-- Recorded facts: the grants, budgets and plans that the admin API and plan renewals set.
CREATE TABLE credit_grants (
    grant_id        TEXT        PRIMARY KEY,
    event_id        TEXT        NOT NULL UNIQUE,
    customer        TEXT        NOT NULL,
    credit_type     TEXT        NOT NULL,
    amount_nanos    BIGINT      NOT NULL CHECK (amount_nanos > 0),
    priority        INTEGER     NOT NULL,
    expires_at      TIMESTAMPTZ,
    reason          TEXT        NOT NULL,     -- plan or admin
    idempotency_key TEXT,
    ts              TIMESTAMPTZ NOT NULL,
    recorded_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX credit_grants_customer ON credit_grants (customer);

CREATE TABLE budget_changes (
    event_id     TEXT        PRIMARY KEY,
    customer     TEXT        NOT NULL,
    scope        TEXT        NOT NULL,        -- customer, team:eng, session:run-1, ...
    period       TEXT        NOT NULL,        -- day, month, lifetime
    limit_nanos  BIGINT      NOT NULL CHECK (limit_nanos >= 0),
    mode         TEXT        NOT NULL,        -- hard, soft
    ts           TIMESTAMPTZ NOT NULL,
    stream_ms    BIGINT      NOT NULL,
    stream_seq   BIGINT      NOT NULL,
    recorded_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX budget_changes_customer ON budget_changes (customer);

CREATE TABLE customer_changes (
    event_id     TEXT        PRIMARY KEY,
    customer     TEXT        NOT NULL,
    plan         TEXT        NOT NULL,
    overrides    TEXT        NOT NULL,        -- JSON of the contract overrides, '' for none
    ts           TIMESTAMPTZ NOT NULL,
    stream_ms    BIGINT      NOT NULL,
    stream_seq   BIGINT      NOT NULL,
    recorded_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX customer_changes_customer ON customer_changes (customer, ts);

-- Every catalog a ledger service was started with: the prices that events name by version.
CREATE TABLE catalogs (
    version      TEXT        PRIMARY KEY,
    name         TEXT        NOT NULL,
    document     JSONB       NOT NULL,        -- the compiled catalog (sidecar.catalog.model)
    recorded_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Stream entries the ledger could not read (unknown kind, malformed field): kept, never lost,
-- and never allowed to block the entries behind them.
CREATE TABLE unparsed_events (
    customer     TEXT        NOT NULL,
    stream_ms    BIGINT      NOT NULL,
    stream_seq   BIGINT      NOT NULL,
    fields       JSONB       NOT NULL,
    problem      TEXT        NOT NULL,
    recorded_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (customer, stream_ms, stream_seq)
);

CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the ledger is append-only: % on % is refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'record a correction as a new entry (kind refund or adjustment)';
END
$$;

-- Statement-level: an UPDATE or DELETE is refused even when it would touch no row.
DO $$
DECLARE
    name TEXT;
BEGIN
    FOREACH name IN ARRAY ARRAY['ledger_entries', 'usage_events', 'credit_grants',
                                'budget_changes', 'customer_changes', 'catalogs',
                                'unparsed_events']
    LOOP
        EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE OR DELETE OR TRUNCATE ON %I '
                       'FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only()',
                       name || '_append_only', name);
    END LOOP;
END
$$;
