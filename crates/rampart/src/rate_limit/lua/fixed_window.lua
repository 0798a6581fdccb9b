-- Fixed window: the window index and its count in one hash.
local w = math.floor(now / per)
local s = redis.call('HMGET', key, 'w', 'c')
local c = 0
if tonumber(s[1]) == w then c = tonumber(s[2]) end
local reset = per - (now - w * per)
if c < limit then
  c = c + 1
  redis.call('HSET', key, 'w', n(w), 'c', c)
  redis.call('PEXPIRE', key, ttl_ms(reset))
  return {1, limit - c, reset, 0}
end
return {0, 0, reset, reset}
