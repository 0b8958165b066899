-- 0007: threshold alerts and their webhook deliveries (sidecar/ledger/webhooks.py).

-- A threshold a commit crossed, decided with the charge (sidecar/store/lua/commit.lua).
CREATE TABLE alerts (
    event_id        TEXT        PRIMARY KEY,
    customer        TEXT        NOT NULL,
    team            TEXT,                    -- the committing call's team
    scope           TEXT        NOT NULL,    -- customer, team:eng, ..., or balance
    period          TEXT,                    -- day, month, lifetime; none for the balance
    rule            TEXT        NOT NULL,    -- p80 (percent of the limit), a<nanos> (amount)
    threshold_nanos BIGINT      NOT NULL,
    used_nanos      BIGINT      NOT NULL,    -- used in the period, or the balance left
    limit_nanos     BIGINT,
    mode            TEXT,                    -- hard, soft
    reservation_id  TEXT        NOT NULL,
    ts              TIMESTAMPTZ NOT NULL,
    stream_ms       BIGINT      NOT NULL,
    stream_seq      BIGINT      NOT NULL,
    recorded_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX alerts_customer ON alerts (customer, ts);
CREATE INDEX alerts_recorded ON alerts (recorded_at);
CREATE TRIGGER alerts_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON alerts
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();

-- Where alerts are sent: a customer's endpoints get that customer's alerts, the operator's
-- (customer NULL) every customer's. The secret signs (Standard Webhooks); a failing endpoint
-- is disabled after DISABLE_AFTER_FAILURES attempts in a row.
CREATE TABLE webhook_endpoints (
    id              TEXT        PRIMARY KEY,
    customer        TEXT,
    url             TEXT        NOT NULL,
    secret          TEXT        NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    failures        INTEGER     NOT NULL DEFAULT 0,   -- attempts failed in a row
    disabled_at     TIMESTAMPTZ,
    disabled_reason TEXT
);

-- One alert to one endpoint: delivered at least once, retried with backoff until then.
CREATE TABLE webhook_deliveries (
    alert_id        TEXT        NOT NULL REFERENCES alerts (event_id),
    endpoint_id     TEXT        NOT NULL REFERENCES webhook_endpoints (id),
    attempts        INTEGER     NOT NULL DEFAULT 0,
    next_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    delivered_at    TIMESTAMPTZ,
    PRIMARY KEY (alert_id, endpoint_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_at) WHERE delivered_at IS NULL;

-- The delivery log: every attempt and what the endpoint answered.
CREATE TABLE webhook_attempts (
    alert_id        TEXT        NOT NULL,
    endpoint_id     TEXT        NOT NULL,
    attempt         INTEGER     NOT NULL,
    at              TIMESTAMPTZ NOT NULL DEFAULT now(),
    status          INTEGER,                 -- the HTTP status; none when no answer came
    error           TEXT        NOT NULL DEFAULT '',
    PRIMARY KEY (alert_id, endpoint_id, attempt)
);
CREATE TRIGGER webhook_attempts_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON webhook_attempts
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();
