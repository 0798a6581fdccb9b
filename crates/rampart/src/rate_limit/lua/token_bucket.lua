-- Token bucket: micro-tokens and the last refill time in one hash.
local M = 1000000
local capm = cap * M
local s = redis.call('HMGET', key, 'm', 't')
local m, last = tonumber(s[1]), tonumber(s[2])
if not m then
  m, last = capm, now
elseif now > last then
  m = math.min(capm, m + math.floor((now - last) * limit * M / per))
  last = now
end
local function time_for(x) return math.floor(x * per / (limit * M)) end
if m >= M then
  m = m - M
  local reset = time_for(capm - m)
  redis.call('HSET', key, 'm', n(m), 't', n(last))
  redis.call('PEXPIRE', key, ttl_ms(reset))
  return {1, math.floor(m / M), reset, 0}
end
return {0, 0, time_for(capm - m), time_for(M - m)}
