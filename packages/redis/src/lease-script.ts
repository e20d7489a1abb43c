import { readPolicyState, writePolicyState } from './rate-limit-script.js';

/**
 * Settles an instance's lease of one subject and grants it the next, in one atomic step on
 * Redis's clock: every policy of the subject is charged the same number of tokens at once.
 *
 * KEYS[1] is the subject's lease hash: one field per instance holding a lease, its value
 * `<seq> <granted> <expires µs> <window of policy 1> ... <window of policy n>`. KEYS[2] is the
 * subject's hash of policy state, stored as by `RATE_LIMIT_SCRIPT` (so a bucket reads the same in
 * both); both keys carry the subject as their hash tag.
 *
 * ARGV: the instance id; the sequence number of the lease it gives back (or, holding none, the
 * highest number it has forgotten) and that lease's unspent tokens; the sequence number of the lease it asks for; how many tokens it asks
 * for (0: only give back); the longest lease in ms; how long past its end Redis keeps a lease
 * before reclaiming it, in ms; the largest share of what the subject has left one lease may
 * take; then four values per policy, as for `RATE_LIMIT_SCRIPT`.
 *
 * Invariants, so no instance ever admits more than exact mode would:
 * - A bucket refills only up to its capacity minus every token out in leases (spent or not),
 *   so the tokens in the bucket plus those held by instances never exceed the capacity.
 * - A lease never outlives the current window of any fixed-window policy, and only its unspent
 *   tokens come back, to the window it was charged to.
 * - A lease whose expiry has passed is reclaimed as spent (its instance may have died);
 *   instances stop spending a lease before Redis reclaims it.
 * - The given-back lease is found by its sequence number: the same number returns its unspent
 *   tokens; a higher one is a lease whose reply the instance never received, returned whole; a
 *   lower one was spent.
 *
 * Reply: tokens granted, the Redis time in µs, the lease's lifetime in ms (0 when nothing was
 * granted), then per policy what it had before the grant (after the give-back) and its window
 * index (0 for a bucket). Fractions travel as strings, as in `RATE_LIMIT_SCRIPT`.
 */
export const LEASE_SCRIPT = `
local time = redis.call('TIME')
local now_us = tonumber(time[1]) * 1000000 + tonumber(time[2])
local now_us_text = time[1] .. string.format('%06d', tonumber(time[2]))
local instance = ARGV[1]
local settle_seq = tonumber(ARGV[2])
local unspent = tonumber(ARGV[3])
local new_seq = tonumber(ARGV[4])
local ask = tonumber(ARGV[5])
local lease_us = tonumber(ARGV[6]) * 1000
local grace_us = tonumber(ARGV[7]) * 1000
local max_share = tonumber(ARGV[8])
local base = 8
local n = (#ARGV - base) / 4

-- Every lease on record is out of the buckets until now, expired or not (reclaiming it late only
-- refills less).
local out = 0
local leases = {}
local entries = redis.call('HGETALL', KEYS[1])
for j = 1, #entries, 2 do
  local parts = {}
  for part in string.gmatch(entries[j + 1], '%S+') do
    parts[#parts + 1] = tonumber(part)
  end
  leases[#leases + 1] = { field = entries[j], parts = parts }
  out = out + parts[2]
end

${readPolicyState('KEYS[2]', 'base')}
local available = {}
local counts = {}
local windows = {}
local f = 0
for i = 1, n do
  local quota = tonumber(ARGV[base + 4 * i - 2])
  local param = tonumber(ARGV[base + 4 * i - 1])
  if ARGV[base + 4 * i - 3] == 'token-bucket' then
    local tokens = quota
    if state[f + 1] and state[f + 2] and state[f + 3] and now_us <= tonumber(state[f + 3]) * 1000 then
      local stored = tonumber(state[f + 1])
      local elapsed = math.max(0, now_us - tonumber(state[f + 2])) / 1000000
      -- Refill stops at the capacity minus what is out (a lowered capacity is applied below).
      tokens = math.min(stored + elapsed * param, math.max(stored, quota - out))
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
end

-- Reclaim expired leases; settle this instance's.
local latest_expiry = 0
for _, lease in ipairs(leases) do
  local parts = lease.parts
  local granted = parts[2]
  if parts[3] <= now_us or lease.field == instance then
    out = out - granted
    redis.call('HDEL', KEYS[1], lease.field)
    if parts[3] > now_us then
      local refund = 0
      if parts[1] == settle_seq then
        refund = math.min(unspent, granted)
      elseif parts[1] > settle_seq then
        refund = granted
      end
      for i = 1, n do
        if ARGV[base + 4 * i - 3] == 'token-bucket' then
          available[i] = available[i] + refund
        elseif parts[3 + i] == windows[i] then
          counts[i] = math.max(0, counts[i] - refund)
          available[i] = tonumber(ARGV[base + 4 * i - 2]) - counts[i]
        end
      end
    end
  else
    latest_expiry = math.max(latest_expiry, parts[3])
  end
end
for i = 1, n do
  if ARGV[base + 4 * i - 3] == 'token-bucket' then
    available[i] = math.max(0, math.min(tonumber(ARGV[base + 4 * i - 2]) - out, available[i]))
  end
end

-- The grant: what was asked, within the share of what every policy has left, at least one token.
local least = nil
for i = 1, n do
  local whole = math.floor(available[i] + 1e-9)
  if least == nil or whole < least then
    least = whole
  end
end
local granted = 0
if ask > 0 and least >= 1 then
  granted = math.min(ask, math.max(1, math.floor(least * max_share)))
end

local ttl_us = 0
if granted > 0 then
  ttl_us = lease_us
  for i = 1, n do
    if ARGV[base + 4 * i - 3] == 'fixed-window' then
      local window_end_us = (windows[i] + 1) * tonumber(ARGV[base + 4 * i - 1]) * 1000000
      ttl_us = math.min(ttl_us, window_end_us - now_us)
    end
  end
  ttl_us = math.floor(ttl_us)
  local expires = now_us + ttl_us + grace_us
  local record = { string.format('%d', new_seq), string.format('%d', granted), string.format('%d', expires) }
  for i = 1, n do
    record[3 + i] = string.format('%d', windows[i])
  end
  redis.call('HSET', KEYS[1], instance, table.concat(record, ' '))
  latest_expiry = math.max(latest_expiry, expires)
end
if latest_expiry > 0 then
  redis.call('PEXPIREAT', KEYS[1], string.format('%d', math.ceil(latest_expiry / 1000)))
end

${writePolicyState('KEYS[2]', 'base', 'granted')}
local reply = { granted, now_us_text, math.floor(ttl_us / 1000) }
for i = 1, n do
  reply[#reply + 1] = string.format('%.17g', available[i])
  reply[#reply + 1] = string.format('%d', windows[i])
end
return reply
`;
