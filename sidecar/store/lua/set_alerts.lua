-- set_alerts: set (replace) or remove the customer's own alert rule on one budget or the balance.
-- KEYS[1]  cg:{s:<shard>}:c:<customer>:customer
-- ARGV[1]  JSON: field (budget field, or ALERT_BALANCE), rule (compiled, engine/alerts.py;
--          '' removes it), audit (the change's audit entry, flat field list)
-- Idempotent by value: the same rule twice is 'unchanged' and appends nothing.
local p = cjson.decode(ARGV[1])
guard({})
local current = redis.call('HGET', K(ALERTS), p.field)
if p.rule == '' then
  if not current then return 'unchanged' end
  redis.call('HDEL', K(ALERTS), p.field)
  append_audit(p.audit)
  return 'removed'
end
if current == p.rule then return 'unchanged' end
redis.call('HSET', K(ALERTS), p.field, p.rule)
append_audit(p.audit)
return 'set'
