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

-- The money counters of a subject (budgets count in them): every node of ``scopes`` in each
-- period of ``periods`` ({day, month, lifetime} counter ids), then the session's:
-- {key, field prefix, scope, period}.
local function money_counters(scopes, periods, session)
  local counters = {}
  for _, scope in ipairs(scopes) do
    for _, period in ipairs({'day', 'month', 'lifetime'}) do
      counters[#counters + 1] = {USAGE(periods[period]), scope .. SEP, scope, period}
    end
  end
  if session then
    counters[#counters + 1] = {SESSION(session), '', 'session:' .. session, 'lifetime'}
  end
  return counters
end

-- The keys a hold record names: the counters it holds on and will charge.
local function hold_keys(rec)
  local keys = {rec.month}
  for _, inc in ipairs(rec.h or {}) do keys[#keys + 1] = inc[1] end
  for _, counter in ipairs(rec.money or {}) do
    keys[#keys + 1] = counter[1]
    if counter[3] then keys[#keys + 1] = counter[1] .. ALERTED_SUFFIX end
  end
  if rec.quota then keys[#keys + 1] = rec.quota[1] end
  return keys
end

-- On a Redis Cluster, while this slot moves to another node (a reshard), a command naming a
-- key that is not on this node fails the script where it stands, keeping the writes before it.
-- So every script that writes first names, in one EXISTS, every key it may touch (the
-- customer's fixed keys, its shard's keys, and ``extra``): if one is not here, the script
-- fails before it has written anything, and the client runs it again once the move is done
-- (store/connection.py). On a node that is not moving a slot, EXISTS finds nothing wrong.
local function touch(extra)
  local keys = {KEYS[1], K(BUCKET), K(BUCKETS), K(BUDGETS), K(ALERTS), K(ALERTED), K(BALANCE),
    K(HOLDS), K(HOLD_EXPIRY), SHARD .. ':' .. EVENTS, SHARD .. ':' .. CUSTOMERS,
    SHARD .. ':' .. GENERATION}
  for _, key in ipairs(extra) do keys[#keys + 1] = key end
  redis.call('EXISTS', unpack(keys))
end

-- A shard without its generation marker has lost the state the ledger knows of (restarted
-- empty, flushed, or fenced by the ledger): nothing is decided on it until it is rebuilt.
local function require_state()
  if redis.call('EXISTS', SHARD .. ':' .. GENERATION) == 0 then
    error({err = 'LOSTSTATE ' .. SHARD .. ' has no generation marker: Redis lost its state; '
      .. 'restore it with creditgate ledger rebuild --all'})
  end
end

-- ``touch`` for a script that decides on the shard's state: refused on a lost one.
local function guard(extra)
  touch(extra)
  require_state()
end

-- ``guard`` for a script that also purges: the holds whose time is up (at most 100 a call;
-- those left over still count, conservatively, until a later call) are read, and their keys
-- guarded with ``extra``. Returns them for ``purge``.
local function prepare(now, extra)
  local due = redis.call('ZRANGEBYSCORE', K(HOLD_EXPIRY), '-inf', now, 'LIMIT', 0, 100)
  local records = {}
  for i, rid in ipairs(due) do
    records[i] = cjson.decode(redis.call('HGET', K(HOLDS), rid))
    for _, key in ipairs(hold_keys(records[i])) do extra[#extra + 1] = key end
  end
  guard(extra)
  return {rids = due, records = records}
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

-- Expire the holds ``prepare`` found due, so that they stop counting against every cap (no
-- sweeper is needed for correctness). An expired hold keeps its record, without increments,
-- for EXPIRED_RETAIN_MS: a late commit is still charged. Then it is forgotten.
local function purge(due, now)
  for i, rid in ipairs(due.rids) do
    local rec = due.records[i]
    if rec.s == 'held' then
      unhold(rec)
      rec.s, rec.h, rec.rem, rec.soft = 'expired', nil, nil, nil
      redis.call('HSET', K(HOLDS), rid, cjson.encode(rec))
      redis.call('ZADD', K(HOLD_EXPIRY), now + EXPIRED_RETAIN_MS, rid)
    else
      redis.call('HDEL', K(HOLDS), rid)
      redis.call('ZREM', K(HOLD_EXPIRY), rid)
    end
  end
end

-- Let ``key`` live at least ``ms`` from now.
local function extend(key, ms)
  if redis.call('PTTL', key) < ms then redis.call('PEXPIRE', key, ms) end
end

-- The record hash of the holds placed in window ``w`` and resolved since.
local function RESOLVED(w) return K(RESOLVED_PREFIX .. w) end

-- A hold is resolved: its record leaves HOLDS and what a retry needs stays in its window's
-- hash for ``window`` ms: ``c|cost|overrun|released|uncovered|burned`` (burned as JSON
-- triples, or empty) for a commit, ``r`` for a release. About 100 bytes.
local function resolve(rid, rec, compact, window)
  redis.call('HDEL', K(HOLDS), rid)
  redis.call('ZREM', K(HOLD_EXPIRY), rid)
  redis.call('HSET', RESOLVED(rec.b), rid, compact)
  extend(RESOLVED(rec.b), window)
end

-- A commit's compact record from its answer, and the answer again from the record.
local function committed_record(r)
  local burned = ''
  if r.burned then
    local triples = {}
    for i, b in ipairs(r.burned) do triples[i] = {b.grant_id, b.credit_type, b.amount} end
    burned = cjson.encode(triples)
  end
  return table.concat({'c', r.cost, r.overrun, r.released, r.uncovered, burned}, '|')
end

local function committed_answer(record)
  local cost, overrun, released, uncovered, burned =
    string.match(record, '^c|(%d+)|(%d+)|(%d+)|(%d+)|(.*)$')
  local r = {result = 'already_committed', cost = cost, overrun = overrun, released = released,
    uncovered = uncovered}
  if burned ~= '' then
    r.burned = {}
    for i, t in ipairs(cjson.decode(burned)) do
      r.burned[i] = {grant_id = t[1], credit_type = t[2], amount = t[3]}
    end
  end
  return r
end

-- Fields of a burn key: priority|expires_at_ms|created_ms|credit_type|grant_id.
local function bucket_fields(member)
  local parts = {}
  for part in string.gmatch(member, '[^|]+') do parts[#parts + 1] = part end
  return tonumber(parts[2]), parts[4], parts[5]
end

-- What a hold may still take: eligible buckets (credit ``types``) still valid at ``exp``,
-- plus the room left under ``overage_cap`` (nanos, string) in the month counter ``month_key``,
-- minus what is held already.
local function available(types, exp, overage_cap, month_key)
  local eligible = {}
  for _, t in ipairs(types) do eligible[t] = true end
  local funds = ZERO
  local members = redis.call('ZRANGE', K(BUCKETS), 0, -1)
  if #members > 0 then
    local amounts = redis.call('HMGET', K(BUCKET), unpack(members))
    for i, member in ipairs(members) do
      local expires, credit_type = bucket_fields(member)
      if expires > exp and eligible[credit_type] then funds = add(funds, N(amounts[i])) end
    end
  end
  local room = sub(N(overage_cap), N(redis.call('HGET', month_key, UNCOVERED)))
  if room[1] < 0 then room = ZERO end
  return sub(add(funds, room), N(redis.call('HGET', K(BALANCE), HELD)))
end

local function append_event(fields)
  return redis.call('XADD', SHARD .. ':' .. EVENTS, '*', unpack(fields))
end

-- The audit entry of an admin change (service/audit.py), appended with the change itself:
-- ``audit`` is its fields as a flat list, or nil.
local function append_audit(audit)
  if audit and audit ~= cjson.null then append_event(audit) end
end
