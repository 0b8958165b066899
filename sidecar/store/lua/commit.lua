-- commit: settle one hold at the actual cost, burn buckets in order, append the event.
-- KEYS[1]  cg:{s:<shard>}:c:<customer>:customer
-- ARGV[1]  JSON: rid, now (ms), w (the hold's record window), window (ms a resolved hold is
--          remembered), whole (nano-credits of the exact cost, string), rem (sub-nano
--          remainder in femto-credits, 0..999999), units (actual, by kind), quota_units
--          (actual units counted by the feature's quota), catalog_version, estimated? (the
--          units were counted from what was delivered, not reported: said on the event),
--          tiered? ([[month counter field, units, tiers]]: units priced here, on top of whole),
--          serve? (the cost of serve in femto-credits, a string: recorded on the event)
-- The customer's carried remainder (balance.frac) turns rem into whole nano-credits; see
-- engine/pricing.py. Cost above the hold is charged and reported as overrun; cost that no
-- eligible, unexpired bucket covers is uncovered, and counted as this month's overage. A hold
-- that expired is charged all the same (held zero): the call it was for did run.
-- The event carries the remainder after this commit (carry, femto-credits), so that a
-- rebuild from the ledger restores it exactly.
-- Alerts (engine/alerts.py) are decided here, with the charge: a threshold fires in the commit
-- whose charge crosses it, so concurrent commits can neither both fire it nor both miss it.
-- Returns the JSON answer; a second commit returns the first with already_committed.
local p = cjson.decode(ARGV[1])
local now = p.now
local function again()
  local done = redis.call('HGET', RESOLVED(p.w), p.rid)
  if not done then return cjson.encode({result = 'not_found'}) end
  if done == 'r' then return cjson.encode({result = 'already_released'}) end
  return cjson.encode(committed_answer(done))
end
local raw = redis.call('HGET', K(HOLDS), p.rid)
if not raw then return again() end
local rec = cjson.decode(raw)
local touched = hold_keys(rec)
touched[#touched + 1] = RESOLVED(rec.b)
purge(prepare(now, touched), now)
raw = redis.call('HGET', K(HOLDS), p.rid)
if not raw then return cjson.encode({result = 'not_found'}) end -- forgotten by the purge
rec = cjson.decode(raw)
local held = ZERO
if rec.s == 'held' then
  held = N(rec.a)
  unhold(rec)
end

local charge, rem = N(p.whole), p.rem
-- Tiered units (engine/tiers.py): priced across the tiers from where the month's counter
-- stands, which they advance, so that concurrent commits are priced one after the other.
-- A tier is {up to (-1: the rest), whole nano-credits per unit, femto-credits beyond};
-- units * whole stays below 2^53 (engine/tiers.py MAX_TIERED_NANOS), and the femto part is
-- split so that no product passes it either.
for _, part in ipairs(p.tiered or {}) do
  local field, units, tiers = part[1], part[2], part[3]
  local at = tonumber(redis.call('HGET', rec.month, field) or 0)
  local stop = at + units
  for _, tier in ipairs(tiers) do
    local top = stop
    if tier[1] >= 0 and tier[1] < stop then top = tier[1] end
    if top > at then
      local k = top - at
      local tail = (k % FEMTOS_PER_NANO) * tier[3]
      local nanos = k * tier[2] + math.floor(k / FEMTOS_PER_NANO) * tier[3]
        + math.floor(tail / FEMTOS_PER_NANO)
      rem = rem + tail % FEMTOS_PER_NANO
      charge = add(charge, {math.floor(nanos / B), nanos % B})
      at = top
    end
  end
  redis.call('HINCRBY', rec.month, field, string.format('%d', units))
end
charge = add(charge, {0, math.floor(rem / FEMTOS_PER_NANO)})
local frac = tonumber(redis.call('HGET', K(BALANCE), CARRY) or 0) + rem % FEMTOS_PER_NANO
if frac >= FEMTOS_PER_NANO then
  frac = frac - FEMTOS_PER_NANO
  charge = add(charge, {0, 1})
end
redis.call('HSET', K(BALANCE), CARRY, string.format('%d', frac))

-- Burn in key order (the burn order); expired buckets never spend and are written off.
local eligible = {}
for _, t in ipairs(rec.types) do eligible[t] = true end
local left, burned = charge, {}
local members = redis.call('ZRANGE', K(BUCKETS), 0, -1)
if #members > 0 then
  local amounts = redis.call('HMGET', K(BUCKET), unpack(members))
  for i, member in ipairs(members) do
    local expires, credit_type, grant_id = bucket_fields(member)
    local amount = N(amounts[i])
    if expires <= now then
      redis.call('HDEL', K(BUCKET), member)
      redis.call('ZREM', K(BUCKETS), member)
      append_event({'kind', 'expiry', 'event_id', 'x:' .. grant_id, 'customer', rec.ev.customer,
        'grant_id', grant_id, 'credit_type', credit_type, 'amount', S(amount), 'ts', now})
    elseif eligible[credit_type] and cmp(left, ZERO) > 0 then
      local take = minimum(amount, left)
      left = sub(left, take)
      if cmp(take, amount) == 0 then
        redis.call('HDEL', K(BUCKET), member)
        redis.call('ZREM', K(BUCKETS), member)
      else
        redis.call('HINCRBY', K(BUCKET), member, '-' .. S(take))
      end
      burned[#burned + 1] = {grant_id = grant_id, credit_type = credit_type, amount = S(take)}
    end
  end
end
local cost = S(charge)
if cmp(left, ZERO) > 0 then redis.call('HINCRBY', rec.month, UNCOVERED, S(left)) end
if cost ~= '0' then
  for _, c in ipairs(rec.money) do redis.call('HINCRBY', c[1], c[2], cost) end
end
if rec.quota and p.quota_units > 0 then
  redis.call('HINCRBY', rec.quota[1], rec.quota[2], string.format('%d', p.quota_units))
end

local overrun, released = ZERO, ZERO
if cmp(charge, held) > 0 then overrun = sub(charge, held) else released = sub(held, charge) end
local ev = rec.ev
local debit = {'kind', 'debit', 'event_id', p.rid, 'customer', ev.customer,
  'team', ev.team or '', 'user', ev.user or '', 'agent', ev.agent or '',
  'session', ev.session or '', 'feature', ev.feature, 'model', ev.model or '',
  'units', cjson.encode(p.units), 'cost', cost, 'overrun', S(overrun), 'released', S(released),
  'uncovered', S(left),
  'burned', cjson.encode(burned), 'catalog_version', p.catalog_version,
  'request_id', ev.request_id, 'tags', ev.tags, 'carry', string.format('%d', frac), 'ts', now}
-- Only a call decided in fallback says so: the rest stay as small as they were.
if ev.decided_by then debit[#debit + 1] = 'decided_by'; debit[#debit + 1] = ev.decided_by end
if p.estimated then debit[#debit + 1] = 'estimated'; debit[#debit + 1] = '1' end
if p.serve then debit[#debit + 1] = 'serve_femtos'; debit[#debit + 1] = p.serve end
append_event(debit)

-- ceil(limit * pct / 100), exact on {hi, lo} pairs; an amount threshold is its own level.
local function level_of(item, limit)
  local value = string.sub(item, 2)
  if string.sub(item, 1, 1) == 'a' then return N(value) end
  local pct = tonumber(value)
  local hi, lo = limit[1] * pct, limit[2] * pct
  hi, lo = hi + math.floor(lo / B), lo % B
  local q = math.floor(hi / 100)
  local low = math.ceil(((hi - q * 100) * B + lo) / 100) -- below 2^53: exact
  if low >= B then q, low = q + 1, low - B end
  return {q, low}
end

local function alert(fields)
  local out = {'kind', 'alert', 'customer', ev.customer, 'team', ev.team or '',
    'reservation_id', p.rid, 'ts', now}
  for _, f in ipairs(fields) do out[#out + 1] = f end
  append_event(out)
end

-- Budgets: the customer's own rule of each budget, else the plan's; fired once per period
-- (the marker hash lives as long as the period's counter).
if cmp(charge, ZERO) > 0 then
  local names, at = {}, {}
  for i, c in ipairs(rec.money) do
    if c[3] then names[#names + 1] = c[3]; at[#at + 1] = c end -- holds before 0.5 lack it
  end
  if #names > 0 then
    local defs = redis.call('HMGET', K(BUDGETS), unpack(names))
    local own = redis.call('HMGET', K(ALERTS), unpack(names))
    for j, name in ipairs(names) do
      local rule = own[j] or rec.al
      if defs[j] and rule then
        local c = at[j]
        local limit_text, mode = string.match(defs[j], '^(%d+)' .. SEP .. '(%a+)$')
        local limit = N(limit_text)
        local after = N(redis.call('HGET', c[1], c[2]))
        local before = sub(after, charge)
        local scope, period = string.match(name, '^(.*)' .. SEP .. '(%a+)$')
        local marks = c[1] .. ALERTED_SUFFIX
        for item in string.gmatch(rule, '[^,]+') do
          local level = level_of(item, limit)
          if cmp(before, level) < 0 and cmp(after, level) >= 0
              and redis.call('HSETNX', marks, name .. SEP .. item .. SEP .. S(level), 1) == 1 then
            local ttl = redis.call('PTTL', c[1])
            if ttl > 0 then redis.call('PEXPIRE', marks, ttl) end
            alert({'event_id', 'al:' .. p.rid .. ':' .. name .. ':' .. item, 'scope', scope,
              'period', period, 'rule', item, 'threshold', S(level), 'used', S(after),
              'limit', limit_text, 'mode', mode})
          end
        end
      end
    end
  end
end

-- The balance: credits left in unexpired buckets, crossing below a threshold; fired again
-- only once a grant lifts the balance back above it (grant.lua).
local covered = sub(charge, left)
local balance_rule = redis.call('HGET', K(ALERTS), ALERT_BALANCE) or rec.bl
if balance_rule and cmp(covered, ZERO) > 0 then
  local after = ZERO
  for _, v in ipairs(redis.call('HVALS', K(BUCKET))) do after = add(after, N(v)) end
  local before = add(after, covered)
  for item in string.gmatch(balance_rule, '[^,]+') do
    local level = level_of(item, nil)
    if cmp(before, level) >= 0 and cmp(after, level) < 0
        and redis.call('HSETNX', K(ALERTED), S(level), 1) == 1 then
      alert({'event_id', 'al:' .. p.rid .. ':balance:' .. item, 'scope', 'balance',
        'period', '', 'rule', item, 'threshold', S(level), 'used', S(after), 'limit', '',
        'mode', ''})
    end
  end
end

local r = {result = 'committed', cost = cost, overrun = S(overrun), released = S(released),
  uncovered = S(left), burned = #burned > 0 and burned or nil}
resolve(p.rid, rec, committed_record(r), p.window)
return cjson.encode(r)
