-- reserve: check every rate limit, quota, budget and the balance, then place one hold.
-- KEYS[1]  cg:{s:<shard>}:c:<customer>:customer
-- ARGV[1]  JSON work order from store/redis_store.py:
--   rid, now (ms), exp (ms, hold expiry), hold (nano-credits, string), key (idempotency key),
--   w (this reserve's record window), seen (the windows a first attempt may be in, newest
--   first), window (ms a record is kept), scopes (list: customer, team:eng, ...), periods
--   {day, month, lifetime} (counter ids), session?, session_budget? (nanos), quota? {feature,
--   units, limit, period (counter id)}, rl (list of {scope, rpm?, tpm?}), tokens, minute,
--   types (credit types that may pay), overage_cap (nanos), month (counter id), ev
--   (attribution for the event), force? (a replay of a reserve decided in fallback: it was
--   answered allowed already, so no cap refuses it; what it holds past a cap is still held),
--   grow? (the hold may grow later, grow.lua: what that checks is kept on the hold),
--   alert_budgets?, alert_balance? (the plan's default alert rules, engine/alerts.py)
-- Returns the JSON answer; a retry with the same idempotency key returns the first allowed
-- answer (denials are not kept: a retry is decided again), with what remained while its hold
-- is in flight, and the reservation id and amount held after.
local p = cjson.decode(ARGV[1])
local now = p.now
local index = K(RESERVES_PREFIX .. p.w)
local touched = {index, K(RATE_PREFIX .. p.minute), USAGE(p.month)}
for _, period in pairs(p.periods) do touched[#touched + 1] = USAGE(period) end
if p.session then touched[#touched + 1] = SESSION(p.session) end
if p.quota then touched[#touched + 1] = USAGE(p.quota.period) end
local due = prepare(now, touched)

-- cjson writes an empty table as {}: an empty list is left out instead.
local function answer(rid, held, remaining, soft)
  return cjson.encode({allowed = true, reason = 'ok', reservation_id = rid, held = held,
    remaining = remaining, soft_limits_hit = soft})
end
for _, w in ipairs(p.seen) do
  local first = redis.call('HGET', K(RESERVES_PREFIX .. w), p.key)
  if first then
    local rid, held = string.match(first, '^(.*)|(%d+)$')
    local raw = redis.call('HGET', K(HOLDS), rid)
    local rec = raw and cjson.decode(raw)
    if rec and rec.s == 'held' then return answer(rid, held, rec.rem, rec.soft) end
    return answer(rid, held, nil, nil)
  end
end
purge(due, now)

-- Only an allowed answer is kept under the idempotency key: a denial moves nothing, so a
-- retry is decided afresh (a rate-limited caller may succeed a minute later).
local function deny(reason, scope)
  return cjson.encode({allowed = false, reason = reason, scope = scope})
end
local check = not p.force

-- Rate limits: fixed one-minute windows.
local rlk = K(RATE_PREFIX .. p.minute)
for _, r in ipairs(p.rl) do
  local used = redis.call('HMGET', rlk, r.scope .. SEP .. RATE_REQUESTS,
    r.scope .. SEP .. RATE_TOKENS)
  if check and r.rpm and tonumber(used[1] or 0) + 1 > r.rpm then
    return deny('rate_limited', r.scope .. '/requests_per_minute')
  end
  if check and r.tpm and p.tokens > 0 and tonumber(used[2] or 0) + p.tokens > r.tpm then
    return deny('rate_limited', r.scope .. '/tokens_per_minute')
  end
end

-- Metered feature quota, in units.
local q = p.quota
local qkey, qfield
if q then
  qkey, qfield = USAGE(q.period), QUOTA_PREFIX .. q.feature .. SEP
  local used = redis.call('HMGET', qkey, qfield .. USED, qfield .. HELD)
  local in_use = tonumber(used[1] or 0) + tonumber(used[2] or 0)
  -- A call that declares no units still needs room: it will be counted at commit.
  if check and (in_use + q.units > q.limit or in_use >= q.limit) then
    return deny('quota_exceeded', 'feature:' .. q.feature .. '/' .. q.period)
  end
end

-- Units priced by graduated tiers (engine/tiers.py) are held at the highest price from the
-- tier the month's counter stands in ({up to, whole nanos, femtos}: a ceiling per tier), on
-- top of the hold of the rest, rounded up: the counter only grows until the commit.
local hold = N(p.hold)
for _, part in ipairs(p.tiered or {}) do
  local at = tonumber(redis.call('HGET', USAGE(p.month), part[1]) or 0)
  local units, price = part[2], nil
  for _, tier in ipairs(part[3]) do
    if tier[1] < 0 or at < tier[1] then price = tier; break end
  end
  local tail = (units % FEMTOS_PER_NANO) * price[3]
  local nanos = units * price[2] + math.floor(units / FEMTOS_PER_NANO) * price[3]
    + math.ceil(tail / FEMTOS_PER_NANO)
  hold = add(hold, {math.floor(nanos / B), nanos % B})
end
if p.tiered then p.hold = S(hold) end

-- Budgets: every node of the subject path, every period, plus the session.
local counters = money_counters(p.scopes, p.periods, p.session)
local fields = {}
for i, c in ipairs(counters) do fields[i] = c[3] .. SEP .. c[4] end
local defs = redis.call('HMGET', K(BUDGETS), unpack(fields))
if p.session and not defs[#counters] and p.session_budget then
  defs[#counters] = p.session_budget .. SEP .. 'hard'
end
local remaining, soft, worst = {}, {}, nil
for i, c in ipairs(counters) do
  if defs[i] then
    local limit, mode = string.match(defs[i], '^(%d+)' .. SEP .. '(%a+)$')
    local used = redis.call('HMGET', c[1], c[2] .. USED, c[2] .. HELD)
    local left = sub(sub(N(limit), N(used[1])), N(used[2]))
    local name = c[3] .. '/' .. c[4]
    -- Past the cap even a zero hold is refused: its commit would still count against it.
    if cmp(hold, left) > 0 or cmp(left, ZERO) <= 0 then
      if mode == 'hard' then
        if not worst or cmp(left, worst[2]) < 0 then worst = {name, left, c[3]} end
      else
        soft[#soft + 1] = name
      end
    end
    local kind = string.match(c[3], '^(%a+)')
    local after = sub(left, hold)
    if not remaining[kind] or cmp(after, remaining[kind]) < 0 then remaining[kind] = after end
  end
end
if check and worst then
  local reason = 'budget_exceeded'
  if string.sub(worst[3], 1, 8) == 'session:' then reason = 'session_budget_exceeded' end
  return deny(reason, worst[1])
end

-- Balance: eligible buckets still valid when the hold expires, plus overage room.
local funds_left = available(p.types, p.exp, p.overage_cap, USAGE(p.month))
if check and cmp(hold, funds_left) > 0 then return deny('insufficient_credits', 'balance') end

-- Place the hold: every increment is recorded so that release and expiry undo it exactly.
local h, money = {}, {}
local function inc(key, field, delta)
  redis.call('HINCRBY', key, field, delta)
  h[#h + 1] = {key, field, delta}
end
for _, r in ipairs(p.rl) do
  redis.call('HINCRBY', rlk, r.scope .. SEP .. RATE_REQUESTS, 1)
  if p.tokens > 0 then redis.call('HINCRBY', rlk, r.scope .. SEP .. RATE_TOKENS, p.tokens) end
end
if #p.rl > 0 then redis.call('PEXPIRE', rlk, RATE_WINDOW_TTL_MS) end
-- Use is counted on every node and period (a budget set later sees it); a hold counts only
-- against the budgets in force now: a budget set while a call is in flight sees that call
-- when it commits.
local caps = {} -- what grow.lua checks a larger hold against: the budgets in force now
for i, c in ipairs(counters) do
  if defs[i] and p.hold ~= '0' then inc(c[1], c[2] .. HELD, p.hold) end
  if defs[i] then caps[#caps + 1] = {c[1], c[2], fields[i], defs[i], c[3]} end
  money[#money + 1] = {c[1], c[2] .. USED, fields[i]}
end
if q and q.units > 0 then inc(qkey, qfield .. HELD, string.format('%d', q.units)) end
if p.hold ~= '0' then inc(K(BALANCE), HELD, p.hold) end
redis.call('PEXPIRE', USAGE(p.periods.day), DAY_COUNTER_TTL_MS)
redis.call('PEXPIRE', USAGE(p.periods.month), MONTH_COUNTER_TTL_MS)
if p.session then redis.call('PEXPIRE', SESSION(p.session), SESSION_TTL_MS) end

local out_remaining = {balance = S(sub(funds_left, hold))}
for kind, value in pairs(remaining) do out_remaining[kind] = S(value) end
local soft_hit = #soft > 0 and soft or nil
local rec = {s = 'held', a = p.hold, x = p.exp, b = p.w, h = h, money = money,
  types = p.types, month = USAGE(p.month), ev = p.ev, rem = out_remaining, soft = soft_hit}
if q then rec.quota = {qkey, qfield .. USED} end
rec.al, rec.bl = p.alert_budgets, p.alert_balance -- the plan's default alert rules
if p.grow then rec.caps, rec.ocap, rec.ql = caps, p.overage_cap, q and q.limit end
redis.call('HSET', K(HOLDS), p.rid, cjson.encode(rec))
redis.call('ZADD', K(HOLD_EXPIRY), p.exp, p.rid)
redis.call('HSET', index, p.key, p.rid .. '|' .. p.hold)
extend(index, math.max(p.window, p.exp - now))
return answer(p.rid, p.hold, out_remaining, soft_hit)
