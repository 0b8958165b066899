-- restore_state: write a customer's money state rebuilt from the ledger, all or nothing.
-- KEYS[1]  cg:{s:<shard>}:c:<customer>:customer
-- ARGV[1]  JSON: customer, drop (key names to delete first, relative to the customer's
--          prefix), hashes ({name: {field: value}}), buckets (burn keys), ttl ({name: ms}),
--          grants (full idempotency key names of grants), granted (what to store under them)
-- Returns 'restored'.
local p = cjson.decode(ARGV[1])
local touched = {}
for _, name in ipairs(p.drop) do touched[#touched + 1] = K(name) end
for name in pairs(p.hashes) do touched[#touched + 1] = K(name) end
for _, key in ipairs(p.grants) do touched[#touched + 1] = key end
touch(touched) -- into a Redis that lost its state, too: that is its job
for _, name in ipairs(p.drop) do redis.call('DEL', K(name)) end
for name, fields in pairs(p.hashes) do
  local flat = {}
  for field, value in pairs(fields) do
    flat[#flat + 1] = field
    flat[#flat + 1] = value
  end
  if #flat > 0 then redis.call('HSET', K(name), unpack(flat)) end
end
for _, member in ipairs(p.buckets) do redis.call('ZADD', K(BUCKETS), 0, member) end
for name, ms in pairs(p.ttl) do redis.call('PEXPIRE', K(name), ms) end
for _, key in ipairs(p.grants) do redis.call('SET', key, p.granted) end
redis.call('SADD', SHARD .. ':' .. CUSTOMERS, p.customer)
return 'restored'
