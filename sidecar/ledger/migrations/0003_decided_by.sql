-- Who decided a call: the store (Redis, atomically against every cap), or the sidecar alone
-- while Redis could not answer (a feature with on_store_unavailable: allow), replayed later.
ALTER TABLE usage_events ADD COLUMN decided_by text NOT NULL DEFAULT 'store'
    CHECK (decided_by IN ('store', 'fallback'));
COMMENT ON COLUMN usage_events.decided_by IS
    'store: decided by Redis; fallback: by the sidecar while Redis was unreachable';
