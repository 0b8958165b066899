-- "overage" means one thing: cost no credit covered (usage_events.uncovered_nanos, the
-- ledger's overage entries, the invoice's overage). The cost charged above a call's hold is
-- its overrun. A rename: every amount keeps the meaning it was recorded with.
ALTER TABLE usage_events RENAME COLUMN overage_nanos TO overrun_nanos;
ALTER TABLE usage_events RENAME CONSTRAINT usage_events_overage_nanos_check
    TO usage_events_overrun_nanos_check;
COMMENT ON COLUMN usage_events.overrun_nanos IS 'cost charged above the hold';
COMMENT ON COLUMN usage_events.uncovered_nanos IS 'cost no credit covered: the overage';
