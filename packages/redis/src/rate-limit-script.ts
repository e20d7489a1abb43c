/** What a subject's hash holds for one policy, each under `<policy>:<field>` (see `policyField`). */
export type PolicyStateField = 'tokens' | 'at' | 'full' | 'window' | 'count';

/**
 * The field of a subject's hash holding `field` of `policyName`'s state, as the scripts name it.
 * A bucket has `tokens`, `at` (µs) and `full` (epoch ms: when it would be full again, as it was
 * charged); a window has `window` (index since the epoch) and `count`.
 */
export function policyField(policyName: string, field: PolicyStateField): string {
  return `${policyName}:${field}`;
}

/**
 * Checks and charges all of one subject's policies in one atomic step, on Redis's clock: TIME,
 * one HMGET and, for an admitted request, one HSET and one PEXPIREAT.
 *
 * KEYS[1] is the subject's hash, holding every policy's fields (`policyField`). ARGV holds four
 * values per policy: its kind (`token-bucket` | `fixed-window`), its quota (capacity | limit),
 * its refill rate per second | window length in seconds, and its name. The hash expires with
 * the last of its policies: a bucket when it would be full again, a window at its end. Until
 * then a policy past that point reads as missing: a bucket past `full` (its limits may have
 * changed since), a window whose index is not the current one.
 *
 * Reply: `allowed` (1 | 0), the Redis time in µs, then per policy the quota available
 * before this request and the window index (0 for a bucket). Fractions travel as strings
 * because Redis truncates Lua numbers in replies to integers.
 */
/**
 * Lua shared by both scripts: every field of the `n` policies' state, read from the subject's hash
 * `key` with one HMGET into `state`. Policy i's four arguments follow ARGV[`base`].
 */
export const readPolicyState = (key: string, base: string) => `local fields = {}
for i = 1, n do
  local name = ARGV[${base} + 4 * i]
  if ARGV[${base} + 4 * i - 3] == 'token-bucket' then
    fields[#fields + 1] = name .. ':tokens'
    fields[#fields + 1] = name .. ':at'
    fields[#fields + 1] = name .. ':full'
  else
    fields[#fields + 1] = name .. ':window'
    fields[#fields + 1] = name .. ':count'
  end
end
local state = redis.call('HMGET', ${key}, unpack(fields))
`;

/**
 * Lua shared by both scripts: charges every policy `charged` tokens (a Lua expression) from
 * `available`, `counts` and `windows` as read, and writes the hash `key` back with one HSET and one
 * PEXPIREAT at the latest of the policies' expiries. A bucket that has refilled reads as a missing
 * one, so it may expire then (capped for tiny rates); a window, when it ends.
 */
export const writePolicyState = (
  key: string,
  base: string,
  charged: string,
) => `local now_ms = math.floor(now_us / 1000)
local values = {}
local state_expires = 0
local f = 0
for i = 1, n do
  local quota = tonumber(ARGV[${base} + 4 * i - 2])
  local param = tonumber(ARGV[${base} + 4 * i - 1])
  if ARGV[${base} + 4 * i - 3] == 'token-bucket' then
    local tokens = available[i] - ${charged}
    local full = now_ms + math.min(1e15, math.max(1, math.ceil((quota - tokens) / param * 1000)))
    values[#values + 1] = fields[f + 1]
    values[#values + 1] = string.format('%.17g', tokens)
    values[#values + 1] = fields[f + 2]
    values[#values + 1] = now_us_text
    values[#values + 1] = fields[f + 3]
    values[#values + 1] = string.format('%d', full)
    state_expires = math.max(state_expires, full)
    f = f + 3
  else
    values[#values + 1] = fields[f + 1]
    values[#values + 1] = string.format('%d', windows[i])
    values[#values + 1] = fields[f + 2]
    values[#values + 1] = string.format('%d', counts[i] + ${charged})
    state_expires = math.max(state_expires, math.ceil((windows[i] + 1) * param * 1000))
    f = f + 2
  end
end
redis.call('HSET', ${key}, unpack(values))
redis.call('PEXPIREAT', ${key}, string.format('%d', state_expires))
`;

export const RATE_LIMIT_SCRIPT = `
local time = redis.call('TIME')
local now_us = tonumber(time[1]) * 1000000 + tonumber(time[2])
local now_us_text = time[1] .. string.format('%06d', tonumber(time[2]))
local n = #ARGV / 4
${readPolicyState('KEYS[1]', '0')}
local available = {}
local counts = {}
local windows = {}
local allowed = 1
local f = 0
for i = 1, n do
  local quota = tonumber(ARGV[4 * i - 2])
  local param = tonumber(ARGV[4 * i - 1])
  if ARGV[4 * i - 3] == 'token-bucket' then
    local tokens = quota
    if state[f + 1] and state[f + 2] and state[f + 3] and now_us <= tonumber(state[f + 3]) * 1000 then
      local elapsed = math.max(0, now_us - tonumber(state[f + 2])) / 1000000
      tokens = math.min(quota, tonumber(state[f + 1]) + elapsed * param)
    end
    available[i] = tokens
    windows[i] = 0
    f = f + 3
  else
    local window = math.floor(now_us / 1000000 / param)
    local count = 0
    if state[f + 1] and tonumber(state[f + 1]) == window then
      count = tonumber(state[f + 2])
    end
    counts[i] = count
    available[i] = quota - count
    windows[i] = window
    f = f + 2
  end
  if available[i] < 1 then
    allowed = 0
  end
end

-- Nothing is written for a rejected request, so it charges no policy.
if allowed == 1 then
${writePolicyState('KEYS[1]', '0', '1')}end

local reply = { allowed, now_us_text }
for i = 1, n do
  reply[#reply + 1] = string.format('%.17g', available[i])
  reply[#reply + 1] = string.format('%d', windows[i])
end
return reply
`;
