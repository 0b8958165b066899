-- 0012: proxy keys' and admin tokens' records (sidecar/service/keys.py), once as issued and once
-- as revoked, so that `creditgate ledger rebuild` writes them back to a Redis that lost them.
-- A record holds the SHA-256 of its token, never the token.
CREATE TABLE credentials (
    event_id      TEXT        PRIMARY KEY,    -- cr_<id>_issued | cr_<id>_revoked
    customer      TEXT        NOT NULL,
    namespace     TEXT        NOT NULL,       -- proxy-key | admin-token (store/layout.py)
    credential_id TEXT        NOT NULL,
    record        JSONB       NOT NULL,
    revoked       BOOLEAN     NOT NULL,
    ts            TIMESTAMPTZ NOT NULL,
    stream_ms     BIGINT      NOT NULL,
    stream_seq    BIGINT      NOT NULL,
    recorded_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX credentials_customer ON credentials (customer);
CREATE TRIGGER credentials_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON credentials
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();
