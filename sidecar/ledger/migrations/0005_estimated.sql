-- 0005: usage the caller could not measure. The proxy commits a stream that broke, or whose
-- client left, before the upstream reported usage for what it had delivered, counted
-- conservatively (sidecar/proxy/settle.py), and says so.
ALTER TABLE usage_events ADD COLUMN estimated boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN usage_events.estimated IS
    'true: the units were counted by Creditgate from what was delivered, not reported by the model';
