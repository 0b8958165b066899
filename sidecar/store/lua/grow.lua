-- grow: make a hold larger, as a stream delivers more than it holds, checking the larger part
-- against every cap the hold counts on, atomically; each step applies once.
-- KEYS[1]  cg:{s:<shard>}:c:<customer>:customer
-- ARGV[1]  JSON: rid, step (1, 2, ...: a step at or below the last applied answers as it),
--          now (ms), delta (nano-credits to add, string), units (quota units to add)
-- Only a hold reserved with grow (reserve.lua) can grow. Soft budgets never refuse.
-- Returns {result = grown, held} or {result = denied, reason, scope} or {result = not_held}.
local p = cjson.decode(ARGV[1])
local raw = redis.call('HGET', K(HOLDS), p.rid)
local rec = raw and cjson.decode(raw)
if not rec or rec.s ~= 'held' or rec.x <= p.now or not rec.caps then
  return cjson.encode({result = 'not_held'})
end
if (rec.step or 0) >= p.step then return cjson.encode({result = 'grown', held = rec.a}) end
local touched = hold_keys(rec)
guard(touched)
local delta = N(p.delta)
local function deny(reason, scope)
  return cjson.encode({result = 'denied', reason = reason, scope = scope})
end

for _, c in ipairs(rec.caps) do -- {key, field prefix, budget field, def at reserve, scope}
  local def = redis.call('HGET', K(BUDGETS), c[3]) or c[4]
  local limit, mode = string.match(def, '^(%d+)' .. SEP .. '(%a+)$')
  if mode == 'hard' then
    local used = redis.call('HMGET', c[1], c[2] .. USED, c[2] .. HELD)
    local left = sub(sub(N(limit), N(used[1])), N(used[2]))
    if cmp(delta, left) > 0 then
      local reason = 'budget_exceeded'
      if string.sub(c[5], 1, 8) == 'session:' then reason = 'session_budget_exceeded' end
      return deny(reason, string.gsub(c[3], SEP, '/', 1))
    end
  end
end
if rec.quota and rec.ql and p.units > 0 then
  local qheld = string.sub(rec.quota[2], 1, -(#USED + 1)) .. HELD
  local used = redis.call('HMGET', rec.quota[1], rec.quota[2], qheld)
  if tonumber(used[1] or 0) + tonumber(used[2] or 0) + p.units > rec.ql then
    return deny('quota_exceeded', 'feature:' .. rec.ev.feature)
  end
end
if cmp(delta, available(rec.types, rec.x, rec.ocap, rec.month)) > 0 then return deny('insufficient_credits', 'balance') end

local function inc(key, field, amount)
  redis.call('HINCRBY', key, field, amount)
  rec.h[#rec.h + 1] = {key, field, amount}
end
for _, c in ipairs(rec.caps) do inc(c[1], c[2] .. HELD, p.delta) end
if rec.quota and p.units > 0 then
  inc(rec.quota[1], string.sub(rec.quota[2], 1, -(#USED + 1)) .. HELD,
    string.format('%d', p.units))
end
inc(K(BALANCE), HELD, p.delta)
rec.a, rec.step = S(add(N(rec.a), delta)), p.step
redis.call('HSET', K(HOLDS), p.rid, cjson.encode(rec))
return cjson.encode({result = 'grown', held = rec.a})
