-- read_state: a customer's buckets, holds, budgets with their use, and uncovered use this
-- month, in one atomic read (it writes nothing).
-- KEYS[1]  cg:{s:<shard>}:c:<customer>:customer
-- ARGV[1]  JSON: now (ms), periods {day, month, lifetime} (counter ids in force),
--          budgets_only (bool)
-- Returns JSON {buckets, held, uncovered, budgets = [{scope, period, limit, mode, used, held}]}
-- (budgets left out when there are none). Holds whose time has passed count for nothing, as
-- they will once a script purges them: what they still add to a counter is taken off here.
local p = cjson.decode(ARGV[1])
require_state()
local out = {}
local stale = {} -- key .. '\0' .. field -> nanos still counted by holds whose time is up
for _, rid in ipairs(redis.call('ZRANGEBYSCORE', K(HOLD_EXPIRY), '-inf', p.now)) do
  local rec = cjson.decode(redis.call('HGET', K(HOLDS), rid))
  for _, inc in ipairs(rec.h or {}) do
    local at = inc[1] .. '\0' .. inc[2]
    stale[at] = add(stale[at] or ZERO, N(inc[3]))
  end
end
-- A counter's value at ``key``, ``field`` as it stands now.
local function present(key, field, value)
  local extra = stale[key .. '\0' .. field]
  if not extra then return value or '0' end
  return S(sub(N(value), extra))
end
if not p.budgets_only then
  local raw = redis.call('HGETALL', K(BUCKET))
  local buckets = {}
  for i = 1, #raw, 2 do buckets[raw[i]] = raw[i + 1] end
  out.buckets = buckets
  out.held = present(K(BALANCE), HELD, redis.call('HGET', K(BALANCE), HELD))
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
    used = used[1] or '0', held = present(key, stem .. HELD, used[2])}
end
if #budgets > 0 then out.budgets = budgets end
return cjson.encode(out)
