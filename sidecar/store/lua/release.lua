-- release: void a hold; every cap it counted against is freed at once.
-- KEYS[1]  cg:{s:<shard>}:c:<customer>:customer
-- ARGV[1]  JSON: rid, now (ms), w (the hold's record window), window (ms a resolved hold is
--          remembered)
-- Returns JSON {result, released (nano-credits)}: released, already_released,
-- already_committed, expired (its time ran out first) or not_found.
local p = cjson.decode(ARGV[1])
local raw = redis.call('HGET', K(HOLDS), p.rid)
if not raw then
  local done = redis.call('HGET', RESOLVED(p.w), p.rid)
  if not done then return cjson.encode({result = 'not_found'}) end
  if done == 'r' then return cjson.encode({result = 'already_released'}) end
  return cjson.encode({result = 'already_committed'})
end
local rec = cjson.decode(raw)
if rec.s == 'expired' then return cjson.encode({result = 'expired'}) end
local touched = hold_keys(rec)
touched[#touched + 1] = RESOLVED(rec.b)
purge(prepare(p.now, touched), p.now)
raw = redis.call('HGET', K(HOLDS), p.rid)
if not raw then return cjson.encode({result = 'not_found'}) end -- forgotten by the purge
rec = cjson.decode(raw)
if rec.s == 'expired' then return cjson.encode({result = 'expired'}) end
unhold(rec)
resolve(p.rid, rec, 'r', p.window)
return cjson.encode({result = 'released', released = rec.a})
