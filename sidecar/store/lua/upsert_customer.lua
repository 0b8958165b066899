-- upsert_customer: create or change a customer's plan and contract overrides.
-- KEYS[1]  cg:{s:<shard>}:c:<customer>:customer
-- ARGV[1]  JSON: audit? (the change's audit entry, flat field list), customer, plan, overrides (JSON text, '' for none), now (ms)
-- Writing the same plan and overrides again changes nothing: idempotent by value.
local p = cjson.decode(ARGV[1])
guard({})
local current = redis.call('HMGET', KEYS[1], PLAN, OVERRIDES)
if current[1] == p.plan and current[2] == p.overrides then return 'unchanged' end
redis.call('SADD', SHARD .. ':' .. CUSTOMERS, p.customer)
redis.call('HSET', KEYS[1], PLAN, p.plan, OVERRIDES, p.overrides, UPDATED_MS, p.now)
append_event({'kind', 'customer', 'event_id', 'c:' .. p.customer .. ':' .. p.now,
  'customer', p.customer, 'plan', p.plan, 'overrides', p.overrides, 'ts', p.now})
append_audit(p.audit)
return 'upserted'
