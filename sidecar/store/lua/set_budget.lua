-- set_budget: set (replace) the cap of one subject node for one period.
-- KEYS[1]  cg:{s:<shard>}:c:<customer>:customer
-- ARGV[1]  JSON: audit? (the change's audit entry, flat field list), customer, scope (customer, team:eng, session:run-1, ...), period (day,
--          month, lifetime), limit (nano-credits, string), mode (hard, soft), now (ms)
-- Setting the same budget twice is a no-op apart from its event: idempotent by value.
local p = cjson.decode(ARGV[1])
guard({})
local field = p.scope .. SEP .. p.period
local value = p.limit .. SEP .. p.mode
if redis.call('HGET', K(BUDGETS), field) == value then return 'unchanged' end
redis.call('HSET', K(BUDGETS), field, value)
append_event({'kind', 'budget', 'event_id', 'b:' .. field .. ':' .. p.now, 'customer', p.customer,
  'scope', p.scope, 'period', p.period, 'limit', p.limit, 'mode', p.mode, 'ts', p.now})
append_audit(p.audit)
return 'set'
