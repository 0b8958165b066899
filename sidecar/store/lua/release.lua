-- release: void a hold; every cap it counted against is freed at once.
-- KEYS[1]  cg:{s:<shard>}:c:<customer>:customer
-- ARGV[1]  JSON: rid, now (ms)
-- Returns JSON {result, released (nano-credits)}: released, already_released,
-- already_committed, expired (its time ran out first) or not_found.
local p = cjson.decode(ARGV[1])
local raw = redis.call('HGET', K(HOLDS), p.rid)
if not raw then return cjson.encode({result = 'not_found'}) end
local rec = cjson.decode(raw)
if rec.s == 'committed' then return cjson.encode({result = 'already_committed'}) end
if rec.s == 'released' then return cjson.encode({result = 'already_released'}) end
guard(hold_keys(rec))
purge(p.now)
raw = redis.call('HGET', K(HOLDS), p.rid)
if not raw then return cjson.encode({result = 'not_found'}) end -- forgotten by the purge
rec = cjson.decode(raw)
if rec.s == 'expired' then return cjson.encode({result = 'expired'}) end
unhold(rec)
rec.s = 'released'
resolve(p.rid, rec, p.now)
return cjson.encode({result = 'released', released = rec.a})
