-- Fixed window: "window-index count" in one string.
local w = math.floor(now / per)
local s = redis.call('GET', key)
local c = 0
if s then
  local sep = string.find(s, ' ', 1, true)
  if tonumber(string.sub(s, 1, sep - 1)) == w then c = tonumber(string.sub(s, sep + 1)) end
end
local reset = per - (now - w * per)
if c < limit then
  c = c + 1
  redis.call('SET', key, n(w) .. ' ' .. c, 'PX', ttl_ms(reset))
  return {1, limit - c, reset, 0}
end
return {0, 0, reset, reset}
