-- Sliding-window log: admission times in a sorted set.
redis.call('ZREMRANGEBYSCORE', key, '-inf', n(now - per))
local count = redis.call('ZCARD', key)
if count < limit then
  redis.call('ZADD', key, n(now), n(now) .. '-' .. count)
  redis.call('PEXPIRE', key, ttl_ms(per))
  return {1, limit - count - 1, per, 0}
end
local oldest = tonumber(redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')[2])
local newest = tonumber(redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')[2])
return {0, 0, math.max(0, per - (now - newest)), math.max(0, per - (now - oldest))}
