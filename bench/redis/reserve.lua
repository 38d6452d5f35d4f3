-- reserve.lua: the Redis side of the allot-vs-Redis baseline (bench/redis/run.sh).
--
-- One "hold" (reservation) against one stock cell, done atomically inside Redis,
-- mirroring what allot does per hold: a counter update, a hold record and an
-- entry in the expiry index.
--
-- Data model:
--   cell:<n>      hash { on_hand = <int>, held = <int> }   available = on_hand - held
--   hold:seq      string counter, the last hold id handed out
--   hold:<id>     hash { cell = <cell key>, qty = <int>, expires_at = <unix ms> }
--   hold:expiry   sorted set, score = expires_at (unix ms), member = <id>
--
-- Call (after SCRIPT LOAD):
--   EVALSHA <sha> 1 cell:<n> <qty> <ttl_ms>
--
-- Replies (all integers, never an error reply: redis-benchmark exits on the
-- first error reply, so "rejected" must be an ordinary value):
--   <id> >= 1   hold taken; held was incremented by qty
--   0           insufficient: available < qty (nothing written)
--   -1          the cell does not exist (nothing written)
--   -2          bad arguments: qty not a positive integer or ttl_ms not an integer
--
-- Note: hold:seq, hold:<id> and hold:expiry are not declared in KEYS. That is
-- fine on a single (non-cluster) server, which is what the benchmark uses.

local cell = KEYS[1]
local qty = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
if not qty or qty <= 0 or qty ~= math.floor(qty) or not ttl or ttl ~= math.floor(ttl) then
  return -2
end

local v = redis.call('HMGET', cell, 'on_hand', 'held')
if not v[1] then
  return -1
end
local available = tonumber(v[1]) - (tonumber(v[2]) or 0)
if available < qty then
  return 0
end

redis.call('HINCRBY', cell, 'held', qty)
local id = redis.call('INCR', 'hold:seq')
local t = redis.call('TIME') -- { seconds, microseconds } as strings
local expires_at = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + ttl
redis.call('HSET', 'hold:' .. id, 'cell', cell, 'qty', qty, 'expires_at', expires_at)
redis.call('ZADD', 'hold:expiry', expires_at, id)
return id
