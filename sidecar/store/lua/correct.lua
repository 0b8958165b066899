-- correct: a refund of a committed call, or a debit adjustment, in the live balance; run by
-- the ledger (ledger/corrections.py), which knows every call. Idempotent by key.
-- KEYS[1]  cg:{s:<shard>}:c:<customer>:customer
-- ARGV[1]  JSON: idem (key name), event_id, customer, kind (refund | adjustment), amount
--          (nanos, string, > 0; for a refund 'all': all that is left of the call, as this
--          script counts it, not the ledger, which may lag), reason, actor, now (ms), and
--   for a refund: corrects (the call's event id), cap (what the call cost, nanos), refunded
--          (what the ledger has refunded of it so far), burns (the call's burns, last first:
--          {member, grant_id, credit_type, amount}), then what no credit covered (the rest of
--          cap: overage); the refund returns the next slice of them, so that refunds in parts
--          return each credit once, to its grant, and then the overage. It also takes the
--          amount off the money counters the call counted in (scopes, periods {day, month,
--          lifetime} and session? of its hold, as reserve.lua names them) that still exist,
--          and the overage off its month's uncovered use: budgets get the room back;
--   for an adjustment: credit_type (its unexpired buckets are debited in burn order),
--          corrects (optional: what it corrects).
-- Returns JSON {result = refunded | adjusted | already_done | over_refund | insufficient_credits,
-- left?, amount?, moves?, uncovered?}. Nothing moves unless the whole correction fits.
local p = cjson.decode(ARGV[1])
local counters = p.kind == 'refund' and money_counters(p.scopes, p.periods, p.session) or {}
local touched = {p.idem, K(REFUNDED)}
for _, c in ipairs(counters) do touched[#touched + 1] = c[1] end
guard(touched)
local prior = redis.call('GET', p.idem)
if prior then
  local out = cjson.decode(prior)
  out.result = 'already_done'
  return cjson.encode(out)
end
local amount = p.amount ~= 'all' and N(p.amount) or nil
local moves = {} -- {member, grant_id, credit_type, take}
local uncovered = ZERO
-- Takes ``by`` off a counter that still exists (a past period's may be gone), never below 0.
local function lower(key, field, by)
  local value = redis.call('HGET', key, field)
  if not value then return end
  local take = minimum(N(value), by)
  if cmp(take, ZERO) > 0 then redis.call('HINCRBY', key, field, '-' .. S(take)) end
end
if p.kind == 'refund' then
  local done = N(redis.call('HGET', K(REFUNDED), p.corrects) or '0')
  if cmp(N(p.refunded), done) > 0 then done = N(p.refunded) end -- after a rebuild
  local left = sub(N(p.cap), done)
  amount = amount or left
  if cmp(amount, left) > 0 or cmp(amount, ZERO) <= 0 then
    return cjson.encode({result = 'over_refund', left = S(left)})
  end
  local skip, want = done, amount
  for _, b in ipairs(p.burns) do
    local size = N(b.amount)
    if cmp(skip, size) >= 0 then
      skip = sub(skip, size)
    elseif cmp(want, ZERO) > 0 then
      local take = minimum(sub(size, skip), want)
      skip, want = ZERO, sub(want, take)
      moves[#moves + 1] = {b.member, b.grant_id, b.credit_type, take}
    end
  end
  uncovered = want -- what the burns did not cover: the call's uncovered cost (cap bounds it)
  redis.call('HSET', K(REFUNDED), p.corrects, S(add(done, amount)))
  for _, c in ipairs(counters) do lower(c[1], c[2] .. USED, amount) end
  if cmp(uncovered, ZERO) > 0 then lower(USAGE(p.periods.month), UNCOVERED, uncovered) end
else
  local want = amount
  local members = redis.call('ZRANGE', K(BUCKETS), 0, -1)
  local amounts = #members > 0 and redis.call('HMGET', K(BUCKET), unpack(members)) or {}
  for i, member in ipairs(members) do
    local expires, credit_type, grant_id = bucket_fields(member)
    if credit_type == p.credit_type and expires > p.now and cmp(want, ZERO) > 0 then
      local take = minimum(N(amounts[i]), want)
      want = sub(want, take)
      moves[#moves + 1] = {member, grant_id, credit_type, sub(ZERO, take)}
    end
  end
  if cmp(want, ZERO) > 0 then
    return cjson.encode({result = 'insufficient_credits', left = S(sub(amount, want))})
  end
end

local listed = {}
for i, m in ipairs(moves) do
  local text = S(m[4])
  local after = redis.call('HINCRBY', K(BUCKET), m[1], text)
  if after == 0 then
    redis.call('HDEL', K(BUCKET), m[1])
    redis.call('ZREM', K(BUCKETS), m[1])
  else
    redis.call('ZADD', K(BUCKETS), 0, m[1])
  end
  listed[i] = {grant_id = m[2], credit_type = m[3], amount = text}
end
append_event({'kind', 'correction', 'event_id', p.event_id, 'customer', p.customer,
  'correction', p.kind, 'corrects', p.corrects or '', 'reason', p.reason, 'actor', p.actor,
  'amount', (p.kind == 'refund' and '' or '-') .. S(amount), 'moves', cjson.encode(listed),
  'uncovered', S(uncovered), 'ts', p.now})
local out = cjson.encode({result = p.kind == 'refund' and 'refunded' or 'adjusted',
  amount = S(amount), moves = listed, uncovered = S(uncovered)})
redis.call('SET', p.idem, out)
return out
