-- Sliding-window counter: window index, current and previous counts.
local w = math.floor(now / per)
local s = redis.call('HMGET', key, 'w', 'c', 'p')
local sw, cur, prev = tonumber(s[1]), tonumber(s[2]) or 0, tonumber(s[3]) or 0
if sw ~= w then
  if sw and w == sw + 1 then prev = cur else prev = 0 end
  cur = 0
end
local into = now - w * per
local est = math.floor(prev * (per - into) / per) + cur
local reset = per - into
if est < limit then
  redis.call('HSET', key, 'w', n(w), 'c', cur + 1, 'p', prev)
  redis.call('PEXPIRE', key, ttl_ms(reset + per))
  return {1, math.max(0, limit - est - 1), reset, 0}
end
local wait = reset
if prev > 0 then
  wait = math.min(math.ceil((est + 1 - limit) * per / prev), math.max(reset, 1))
end
return {0, 0, reset, wait}
