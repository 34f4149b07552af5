-- Claims a node whose lease lapsed on Redis's clock: removes it from the
-- set of nodes, then returns and deletes its subscription documents, in one
-- step, so a node that renewed its lease meanwhile is left alone and a
-- paused node that comes back never has its rewritten hash deleted.
-- KEYS[1]: the set of nodes; KEYS[2]: the node's hash. ARGV[1]: the node;
-- ARGV[2]: '1' if the claiming node announces the documents, else '0': it
-- then leaves a node that left documents to one that does (or to the
-- expiry of its hash), and only removes nodes that left none.
local lease = redis.call('ZSCORE', KEYS[1], ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if not lease or tonumber(lease) >= now then
  return {}
end
if ARGV[2] ~= '1' and redis.call('EXISTS', KEYS[2]) == 1 then
  return {}
end
redis.call('ZREM', KEYS[1], ARGV[1])
local docs = redis.call('HVALS', KEYS[2])
redis.call('DEL', KEYS[2])
return docs
