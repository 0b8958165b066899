-- Shared helpers, prepended to every script by store/scripts.py (Redis has no require), after
-- the layout's names and lifetimes (generated from store/layout.py: BUCKET, USAGE_PREFIX, ...).
--
-- KEYS[1] is the customer's hash key `cg:{s:<shard>}:c:<customer>:customer`; every other key
-- of the customer is named from the same prefix, and the shard's keys (its event stream, its
-- set of customers) from the shard's, so all of them share the hash tag and slot.
--
-- Amounts are decimal strings of integer nano-credits (10^-9 credit). Lua numbers are
-- doubles, exact only to 2^53, so inside a script an amount is a pair {hi, lo} meaning
-- hi * 10^9 + lo with 0 <= lo < 10^9: exact for |amount| below 2^53 credits. Redis keeps
-- the stored value as a 64-bit integer (HINCRBY), exact up to 9.2 * 10^9 credits.

local B = NANOS_PER_CREDIT
local ZERO = {0, 0}
local P = string.sub(KEYS[1], 1, -(#CUSTOMER_SUFFIX + 1))
local SHARD = string.sub(KEYS[1], 1, string.find(KEYS[1], SHARD_END, 1, true))
local function K(name) return P .. ':' .. name end
local function USAGE(period) return K(USAGE_PREFIX .. period) end
local function SESSION(session) return K(SESSION_PREFIX .. session) end

-- On a Redis Cluster, while this slot moves to another node (a reshard), a command naming a
-- key that is not on this node fails the script where it stands, keeping the writes before it.
-- So every script that writes first names, in one EXISTS, every key it may touch (the
-- customer's fixed keys, its shard's keys, and ``extra``): if one is not here, the script fails
-- before it has written anything, and the client runs it again once the move is done
-- (store/connection.py). On a node that is not moving a slot, EXISTS finds nothing wrong.
local function guard(extra)
  local keys = {KEYS[1], K(BUCKET), K(BUCKETS), K(BUDGETS), K(BALANCE), K(HOLDS),
    K(HOLD_EXPIRY), K(RESOLVED), SHARD .. ':' .. EVENTS, SHARD .. ':' .. CUSTOMERS}
  for _, key in ipairs(extra) do keys[#keys + 1] = key end
  redis.call('EXISTS', unpack(keys))
end

-- The keys a hold record names: the counters it holds on and will charge.
local function hold_keys(rec)
  local keys = {rec.month}
  for _, inc in ipairs(rec.h) do keys[#keys + 1] = inc[1] end
  for _, counter in ipairs(rec.money or {}) do keys[#keys + 1] = counter[1] end
  if rec.quota then keys[#keys + 1] = rec.quota[1] end
  return keys
end

local function add(a, b)
  local hi, lo = a[1] + b[1], a[2] + b[2]
  if lo >= B then lo = lo - B; hi = hi + 1 end
  return {hi, lo}
end

local function sub(a, b)
  local hi, lo = a[1] - b[1], a[2] - b[2]
  if lo < 0 then lo = lo + B; hi = hi - 1 end
  return {hi, lo}
end

local function cmp(a, b)
  if a[1] ~= b[1] then return a[1] < b[1] and -1 or 1 end
  if a[2] ~= b[2] then return a[2] < b[2] and -1 or 1 end
  return 0
end

local function minimum(a, b) if cmp(a, b) <= 0 then return a end return b end

-- Parse a decimal integer string (as stored or as sent by Python); nil and false are zero.
local function N(s)
  if not s or s == '' then return ZERO end
  local negative = string.sub(s, 1, 1) == '-'
  if negative then s = string.sub(s, 2) end
  local n = #s
  local value
  if n > 9 then
    value = {tonumber(string.sub(s, 1, n - 9)), tonumber(string.sub(s, n - 8))}
  else
    value = {0, tonumber(s)}
  end
  if negative then return sub(ZERO, value) end
  return value
end

local function S(a)
  if a[1] < 0 then return '-' .. S(sub(ZERO, a)) end
  if a[1] == 0 then return string.format('%d', a[2]) end
  return string.format('%d%09d', a[1], a[2])
end

local function negate(s)
  if string.sub(s, 1, 1) == '-' then return string.sub(s, 2) end
  return '-' .. s
end

-- Undo every increment a hold made ({key, field, delta} triples).
local function unhold(rec)
  for _, inc in ipairs(rec.h) do
    redis.call('HINCRBY', inc[1], inc[2], negate(inc[3]))
  end
end

-- Expire every hold whose time is up, so that it stops counting against every cap; no
-- sweeper is needed for correctness. Also forget resolved holds older than a day (bounded).
local function purge(now)
  -- Bounded per call; holds left over still count (conservative) until a later call.
  local expired = redis.call('ZRANGEBYSCORE', K(HOLD_EXPIRY), '-inf', now, 'LIMIT', 0, 1000)
  for _, rid in ipairs(expired) do
    local rec = cjson.decode(redis.call('HGET', K(HOLDS), rid))
    unhold(rec)
    rec.s = 'expired'
    redis.call('HSET', K(HOLDS), rid, cjson.encode(rec))
    redis.call('ZREM', K(HOLD_EXPIRY), rid)
    redis.call('ZADD', K(RESOLVED), now, rid)
  end
  local old = redis.call('ZRANGEBYSCORE', K(RESOLVED), '-inf', now - RESOLVED_RETAIN_MS,
    'LIMIT', 0, 100)
  for _, rid in ipairs(old) do
    redis.call('HDEL', K(HOLDS), rid)
    redis.call('ZREM', K(RESOLVED), rid)
  end
end

local function resolve(rid, rec, now)
  redis.call('HSET', K(HOLDS), rid, cjson.encode(rec))
  redis.call('ZREM', K(HOLD_EXPIRY), rid)
  redis.call('ZADD', K(RESOLVED), now, rid)
end

-- Fields of a burn key: priority|expires_at_ms|created_ms|credit_type|grant_id.
local function bucket_fields(member)
  local parts = {}
  for part in string.gmatch(member, '[^|]+') do parts[#parts + 1] = part end
  return tonumber(parts[2]), parts[4], parts[5]
end

local function append_event(fields)
  return redis.call('XADD', SHARD .. ':' .. EVENTS, '*', unpack(fields))
end
