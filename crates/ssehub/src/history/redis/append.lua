-- Appends updates to the stream in one atomic step and keeps the id index
-- exactly as long as the stream.
--
-- KEYS[1] the stream, KEYS[2] the index (hash: event id -> stream id),
-- KEYS[3] the index order (list of "streamid eventid", oldest first),
-- KEYS[4] the count of entries ever appended: each entry carries its number
-- in field `n`, so a reader that sees a number skipped knows that entries
-- were trimmed before it could read them.
-- ARGV[1] MAXLEN (approximate: Redis trims whole nodes), ARGV[2] MINID for
-- age retention (exact; reads skip expired entries between appends) or "",
-- ARGV[3] the number of updates, then per update: its event id, its field
-- count, and the fields and values.
-- Returns the stream id of each update, in order.
local stream, index, order, count_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local n = tonumber(ARGV[3])
local at = 4
local ids = {}
for u = 1, n do
  local event_id = ARGV[at]
  local count = tonumber(ARGV[at + 1])
  local xadd = {'XADD', stream, 'MAXLEN', '~', ARGV[1], '*'}
  for f = 1, count do
    xadd[#xadd + 1] = ARGV[at + 1 + f]
  end
  xadd[#xadd + 1] = 'n'
  xadd[#xadd + 1] = redis.call('INCR', count_key)
  local stream_id = redis.call(unpack(xadd))
  -- A reused event id keeps pointing at the earliest entry that carried it.
  redis.call('HSETNX', index, event_id, stream_id)
  redis.call('RPUSH', order, stream_id .. ' ' .. event_id)
  ids[u] = stream_id
  at = at + 2 + count
end
if ARGV[2] ~= '' then
  redis.call('XTRIM', stream, 'MINID', ARGV[2])
end
-- Trimming removes the oldest entries: drop as many from the index's front.
local extra = redis.call('LLEN', order) - redis.call('XLEN', stream)
for _ = 1, extra do
  local item = redis.call('LPOP', order)
  local space = string.find(item, ' ', 1, true)
  local event_id = string.sub(item, space + 1)
  -- A reused event id points at its earliest entry: once that is trimmed,
  -- the id is unknown (a cursor on it replays the whole retained stream).
  if redis.call('HGET', index, event_id) == string.sub(item, 1, space - 1) then
    redis.call('HDEL', index, event_id)
  end
end
return ids
