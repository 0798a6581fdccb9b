-- Sliding-window counter: "window-index current previous" in one string.
local w = math.floor(now / per)
local s = redis.call('GET', key)
local sw, cur, prev = nil, 0, 0
if s then
  local a = string.find(s, ' ', 1, true)
  local b = string.find(s, ' ', a + 1, true)
  sw = tonumber(string.sub(s, 1, a - 1))
  cur = tonumber(string.sub(s, a + 1, b - 1)) or 0
  prev = tonumber(string.sub(s, b + 1)) or 0
end
if sw ~= w then
  if sw and w == sw + 1 then prev = cur else prev = 0 end
  cur = 0
end
local into = now - w * per
local est = math.floor(prev * (per - into) / per) + cur
local reset = per - into
if est < limit then
  redis.call('SET', key, n(w) .. ' ' .. (cur + 1) .. ' ' .. prev, 'PX', ttl_ms(reset + per))
  return {1, math.max(0, limit - est - 1), reset, 0}
end
local wait = reset
if prev > 0 then
  wait = math.min(math.ceil((est + 1 - limit) * per / prev), math.max(reset, 1))
end
return {0, 0, reset, wait}
