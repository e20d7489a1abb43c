/** The hand-rolled stack's table: one row per key, found by the SHA-256 of the secret. */
export const HAND_ROLLED_TABLE = 'bench_hand_rolled_keys';

export const HAND_ROLLED_SCHEMA = `create table if not exists ${HAND_ROLLED_TABLE} (
  id text primary key,
  digest text not null unique,
  owner_id text not null,
  scopes text[] not null,
  resources text[],
  expires_at timestamptz,
  revoked_at timestamptz
)`;

/** Key prefix of express-rate-limit's counters in Redis (the Express stack). */
export const HAND_ROLLED_REDIS_PREFIX = 'keygate-bench-erl:';

/** Key prefix of rate-limiter-flexible's counters in Redis (the Hono stack). */
export const HAND_ROLLED_RLF_PREFIX = 'keygate-bench-rlf';
