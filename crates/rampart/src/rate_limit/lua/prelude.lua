-- Shared by every rate-limit script. ARGV[1] is the time in microseconds,
-- or empty: then the Redis server's clock is used, so the gateways' own
-- clocks never matter. Numbers are written with %.0f: Lua's default
-- formatting would round microsecond timestamps.
local function now_us()
  if ARGV[1] ~= '' then return tonumber(ARGV[1]) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local function n(x) return string.format('%.0f', x) end
local function ttl_ms(us) return math.floor(us / 1000) + 1000 end
local now = now_us()
local limit = tonumber(ARGV[2])
local per = tonumber(ARGV[3])
local cap = tonumber(ARGV[4])
local key = KEYS[1]
