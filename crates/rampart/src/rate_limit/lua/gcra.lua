-- GCRA: the theoretical arrival time of the next request.
local t = math.max(1, math.floor(per / limit))
local tolerance = t * (cap - 1)
local tat = math.max(tonumber(redis.call('GET', key)) or 0, now)
if tat - now <= tolerance then
  local backlog = tat + t - now
  redis.call('SET', key, n(tat + t), 'PX', ttl_ms(backlog))
  return {1, math.max(0, cap - math.ceil(backlog / t)), backlog, 0}
end
return {0, 0, tat - now, tat - now - tolerance}
