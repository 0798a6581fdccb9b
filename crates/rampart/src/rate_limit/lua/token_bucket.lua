-- Token bucket: "micro-tokens last-refill" in one string (one GET, one SET).
local M = 1000000
local capm = cap * M
local s = redis.call('GET', key)
local m, last
if s then
  local sep = string.find(s, ' ', 1, true)
  m, last = tonumber(string.sub(s, 1, sep - 1)), tonumber(string.sub(s, sep + 1))
end
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
  redis.call('SET', key, n(m) .. ' ' .. n(last), 'PX', ttl_ms(reset))
  return {1, math.floor(m / M), reset, 0}
end
return {0, 0, time_for(capm - m), time_for(M - m)}
