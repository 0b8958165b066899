-- void: undo a reserve whose answer never reached the sidecar (a timeout, a lost connection),
-- so that no hold is left that nobody knows of, and a retry with its key is decided afresh.
-- KEYS[1]  cg:{s:<shard>}:c:<customer>:customer
-- ARGV[1]  JSON: key (idempotency key), rid (the reservation id that attempt would have
--          placed), w (the record window of its time), now (ms)
-- Returns JSON {result}: voided (its hold no longer counts; a late commit is still charged in
-- full, as for an expired hold), absent (the attempt never ran), replay (the attempt was a
-- retry answered from an earlier reserve: nothing of its own to undo), or resolved (its hold
-- was committed or released already, through a retry that got its answer).
local p = cjson.decode(ARGV[1])
local index = K(RESERVES_PREFIX .. p.w)
local first = redis.call('HGET', index, p.key)
if not first then return cjson.encode({result = 'absent'}) end
if string.match(first, '^(.*)|') ~= p.rid then return cjson.encode({result = 'replay'}) end
local raw = redis.call('HGET', K(HOLDS), p.rid)
local rec = raw and cjson.decode(raw)
if not rec or rec.s ~= 'held' then return cjson.encode({result = 'resolved'}) end
local touched = hold_keys(rec)
touched[#touched + 1] = index
purge(prepare(p.now, touched), p.now)
raw = redis.call('HGET', K(HOLDS), p.rid) -- the purge may have expired it already
rec = raw and cjson.decode(raw)
if rec and rec.s == 'held' then
  unhold(rec)
  rec.s, rec.h, rec.rem, rec.soft = 'expired', nil, nil, nil
  redis.call('HSET', K(HOLDS), p.rid, cjson.encode(rec))
  redis.call('ZADD', K(HOLD_EXPIRY), p.now + EXPIRED_RETAIN_MS, p.rid)
end
redis.call('HDEL', index, p.key)
return cjson.encode({result = 'voided'})
