/**
 * Checks and charges all of one subject's policies in one atomic step, on Redis's clock.
 *
 * KEYS[i] is the hash holding policy i. ARGV holds three values per policy: its kind
 * (`token-bucket` | `fixed-window`), its quota (capacity | limit) and its refill rate per
 * second | window length in seconds. A bucket hash holds `tokens` and `at` (µs); a window
 * hash holds `window` (index since the epoch) and `count`.
 *
 * Reply: `allowed` (1 | 0), the Redis time in µs, then per policy the quota available
 * before this request and the window index (0 for a bucket). Fractions travel as strings
 * because Redis truncates Lua numbers in replies to integers.
 */
export const RATE_LIMIT_SCRIPT = `
local time = redis.call('TIME')
local now_us = tonumber(time[1]) * 1000000 + tonumber(time[2])
local now_us_text = time[1] .. string.format('%06d', tonumber(time[2]))
local n = #KEYS
local available = {}
local counts = {}
local windows = {}
local allowed = 1

for i = 1, n do
  local kind = ARGV[3 * i - 2]
  local quota = tonumber(ARGV[3 * i - 1])
  local param = tonumber(ARGV[3 * i])
  if kind == 'token-bucket' then
    local state = redis.call('HMGET', KEYS[i], 'tokens', 'at')
    local tokens = quota
    if state[1] and state[2] then
      local elapsed = math.max(0, now_us - tonumber(state[2])) / 1000000
      tokens = math.min(quota, tonumber(state[1]) + elapsed * param)
    end
    available[i] = tokens
    windows[i] = 0
  else
    local window = math.floor(now_us / 1000000 / param)
    local state = redis.call('HMGET', KEYS[i], 'window', 'count')
    local count = 0
    if state[1] and tonumber(state[1]) == window then
      count = tonumber(state[2])
    end
    counts[i] = count
    available[i] = quota - count
    windows[i] = window
  end
  if available[i] < 1 then
    allowed = 0
  end
end

-- Nothing is written for a rejected request, so it charges no policy.
if allowed == 1 then
  for i = 1, n do
    local quota = tonumber(ARGV[3 * i - 1])
    local param = tonumber(ARGV[3 * i])
    if ARGV[3 * i - 2] == 'token-bucket' then
      local tokens = available[i] - 1
      redis.call('HSET', KEYS[i], 'tokens', string.format('%.17g', tokens), 'at', now_us_text)
      -- A bucket that has refilled is the same as a missing one, so it may expire then (capped for tiny rates).
      local ttl = math.min(1e15, math.max(1, math.ceil((quota - tokens) / param * 1000)))
      redis.call('PEXPIRE', KEYS[i], string.format('%d', ttl))
    else
      redis.call('HSET', KEYS[i], 'window', string.format('%d', windows[i]), 'count', string.format('%d', counts[i] + 1))
      redis.call('PEXPIREAT', KEYS[i], string.format('%d', math.ceil((windows[i] + 1) * param * 1000)))
    end
  end
end

local reply = { allowed, now_us_text }
for i = 1, n do
  reply[#reply + 1] = string.format('%.17g', available[i])
  reply[#reply + 1] = string.format('%d', windows[i])
end
return reply
`;
