-- 0009: the cost of serve. Each call records what serving it cost us (the catalog's model
-- costs times its units), exact in femto-credits beside what the customer paid (cost_nanos),
-- so that usage, invoices and exports report cost, revenue and margin.
ALTER TABLE usage_events ADD COLUMN serve_femtos numeric(38, 0) NOT NULL DEFAULT 0;
COMMENT ON COLUMN usage_events.serve_femtos IS
    'what serving the call cost, in femto-credits (10^-15 credit): the catalog''s model costs';
