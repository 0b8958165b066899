-- grant: add a bucket of credits; idempotent by key.
-- KEYS[1]  cg:{s:<shard>}:c:<customer>:customer
-- ARGV[1]  JSON: idem (key name), member (burn key, engine/burn.py), amount (nano-credits,
--          string), customer, grant_id, credit_type, priority, expires_at (ms or absent),
--          now (ms), reason (plan or admin)
-- The event names the idempotency key, so that a rebuild from the ledger restores it.
-- Returns JSON {result = granted | already_granted}.
local p = cjson.decode(ARGV[1])
guard({p.idem})
local prior = redis.call('GET', p.idem)
if prior then
  local out = cjson.decode(prior)
  out.result = 'already_granted'
  return cjson.encode(out)
end
redis.call('HSET', K(BUCKET), p.member, p.amount)
redis.call('ZADD', K(BUCKETS), 0, p.member)
append_event({'kind', 'grant', 'event_id', 'g:' .. p.grant_id, 'customer', p.customer,
  'grant_id', p.grant_id, 'credit_type', p.credit_type, 'amount', p.amount,
  'priority', p.priority, 'expires_at', p.expires_at or '', 'reason', p.reason,
  'idem', p.idem, 'ts', p.now})
-- Balance thresholds fired before fire again once the balance is back above them.
local fired = redis.call('HKEYS', K(ALERTED))
if #fired > 0 then
  local balance = ZERO
  for _, v in ipairs(redis.call('HVALS', K(BUCKET))) do balance = add(balance, N(v)) end
  for _, level in ipairs(fired) do
    if cmp(balance, N(level)) > 0 then redis.call('HDEL', K(ALERTED), level) end
  end
end
local out = cjson.encode({result = 'granted'})
redis.call('SET', p.idem, out)
return out
