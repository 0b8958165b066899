-- read_state: a customer's buckets, holds, budgets with their use, and uncovered use this
-- month, in one atomic read (it writes nothing).
-- KEYS[1]  cg:{s:<shard>}:c:<customer>:customer
-- ARGV[1]  JSON: periods {day, month, lifetime} (counter ids in force), budgets_only (bool)
-- Returns JSON {buckets, held, uncovered, budgets = [{scope, period, limit, mode, used, held}]}
-- (budgets left out when there are none).
local p = cjson.decode(ARGV[1])
local out = {}
if not p.budgets_only then
  local raw = redis.call('HGETALL', K(BUCKET))
  local buckets = {}
  for i = 1, #raw, 2 do buckets[raw[i]] = raw[i + 1] end
  out.buckets = buckets
  out.held = redis.call('HGET', K(BALANCE), HELD) or '0'
  out.uncovered = redis.call('HGET', USAGE(p.periods.month), UNCOVERED) or '0'
end
local defs = redis.call('HGETALL', K(BUDGETS))
local budgets = {}
for i = 1, #defs, 2 do
  local scope, period = string.match(defs[i], '^(.*)' .. SEP .. '(%a+)$')
  local limit, mode = string.match(defs[i + 1], '^(%d+)' .. SEP .. '(%a+)$')
  local key, stem = USAGE(p.periods[period]), scope .. SEP
  if string.sub(scope, 1, 8) == 'session:' then key, stem = SESSION(string.sub(scope, 9)), '' end
  local used = redis.call('HMGET', key, stem .. USED, stem .. HELD)
  budgets[#budgets + 1] = {scope = scope, period = period, limit = limit, mode = mode,
    used = used[1] or '0', held = used[2] or '0'}
end
if #budgets > 0 then out.budgets = budgets end
return cjson.encode(out)
