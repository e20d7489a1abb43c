import { LRUCache } from 'lru-cache';
import { KeygateConfigError } from './errors.js';
import type {
  Headers,
  KeyType,
  PolicyState,
  RateLimiter,
  RateLimitOverride,
  RateLimitPolicy,
  RateLimitResult,
} from './types.js';

export interface RateLimitTier {
  /** Sustained requests per second (token refill rate). */
  perSecond: number;
  /** Token-bucket capacity. */
  burst: number;
  /** Requests per UTC day. */
  daily: number;
}

export type RateLimitTiers = Record<KeyType, RateLimitTier>;

export const DEFAULT_TIERS: RateLimitTiers = {
  public: { perSecond: 100, burst: 1_000, daily: 1_000_000 },
  secret: { perSecond: 1_000, burst: 10_000, daily: 10_000_000 },
};

const DAY_SECONDS = 86_400;

export function validateTier(tier: Partial<RateLimitTier>, where: string): void {
  for (const [field, value] of Object.entries(tier)) {
    if (value === undefined) continue;
    if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
      throw new KeygateConfigError(
        'INVALID_OPTION',
        `${where}.${field} must be a positive number (got ${String(value)})`,
      );
    }
    if (field !== 'perSecond' && !Number.isInteger(value)) {
      throw new KeygateConfigError('INVALID_OPTION', `${where}.${field} must be an integer`);
    }
  }
}

/** A key's effective limits: its tier, field by field overridden by the key's own limits. */
export function resolveLimits(
  tier: RateLimitTier,
  override: RateLimitOverride | null,
): RateLimitTier {
  return {
    perSecond: override?.perSecond ?? tier.perSecond,
    burst: override?.burst ?? tier.burst,
    daily: override?.daily ?? tier.daily,
  };
}

/** The policies that apply to a key: its tier, field by field overridden by the key's own limits. */
export function policiesFor(
  tier: RateLimitTier,
  override: RateLimitOverride | null,
): RateLimitPolicy[] {
  const { perSecond, burst, daily } = resolveLimits(tier, override);
  return [
    { name: 'burst', kind: 'token-bucket', capacity: burst, refillPerSecond: perSecond },
    { name: 'daily', kind: 'fixed-window', limit: daily, windowSeconds: DAY_SECONDS },
  ];
}

/** Seconds a token bucket with `tokens` takes to be full again. */
export function bucketResetSeconds(tokens: number, capacity: number, rate: number): number {
  return Math.max(0, ceilSeconds((capacity - tokens) / rate));
}

// Refills in floating point drift (ten refills of 0.1 make 0.9999999999999999 tokens), which
// would refuse a request whose token is due; whole tokens are kept whole to 1e-9.
function settleTokens(tokens: number): number {
  return Math.round(tokens * 1e9) / 1e9;
}

function ceilSeconds(seconds: number): number {
  return Math.ceil(seconds - 1e-9);
}

/**
 * `X-RateLimit-*` for the policy closest to exhaustion, IETF `RateLimit-Policy`/`RateLimit`,
 * `Retry-After`: built once per limiter answer. `policyHeader` is `RateLimit-Policy`, which only
 * depends on the policies (a key's is made once, with its policies).
 */
export function rateLimitHeaders(
  result: RateLimitResult,
  nowMs: number,
  policyHeader: string = rateLimitPolicyHeader(result.policies.map((s) => s.policy)),
): Headers {
  const { policies } = result;
  if (policies.length === 0) return {};
  let tightest = policies[0]!;
  let remaining = '';
  for (let i = 0; i < policies.length; i++) {
    const state = policies[i]!;
    if (state.remaining < tightest.remaining) tightest = state;
    remaining += `${i > 0 ? ', ' : ''}"${state.policy.name}";r=${state.remaining};t=${state.resetSeconds}`;
  }
  const headers: Headers = {
    'X-RateLimit-Limit': String(tightest.limit),
    'X-RateLimit-Remaining': String(tightest.remaining),
    'X-RateLimit-Reset': String(Math.ceil(nowMs / 1000 + tightest.resetSeconds)),
    'RateLimit-Policy': policyHeader,
    RateLimit: remaining,
  };
  if (!result.allowed) {
    headers['Retry-After'] = String(Math.max(1, Math.ceil(result.retryAfterSeconds ?? 1)));
  }
  return headers;
}

/** The IETF `RateLimit-Policy` header of a set of policies: each one's quota and window. */
export function rateLimitPolicyHeader(policies: readonly RateLimitPolicy[]): string {
  return policies
    .map((policy) => `"${policy.name}";q=${quotaOf(policy)};w=${windowOf(policy)}`)
    .join(', ');
}

function quotaOf(policy: RateLimitPolicy): number {
  return policy.kind === 'fixed-window' ? policy.limit : policy.capacity;
}

function windowOf(policy: RateLimitPolicy): number {
  return policy.kind === 'fixed-window'
    ? policy.windowSeconds
    : Math.max(1, Math.ceil(policy.capacity / policy.refillPerSecond));
}

/** What one policy had before a request: tokens in the bucket, or what is left of the window (and which window). */
export interface PolicySnapshot {
  policy: RateLimitPolicy;
  available: number;
  window?: number;
}

/**
 * The result a limiter reports, from what each policy had before the request and whether it was
 * admitted: shared by every limiter, so headers read the same whichever one answered.
 */
export function settlePolicies(
  snapshots: readonly PolicySnapshot[],
  allowed: boolean,
  nowMs: number,
): RateLimitResult {
  const policies: PolicyState[] = [];
  let retryAfter = 0;
  for (const { policy, available, window } of snapshots) {
    if (policy.kind === 'token-bucket') {
      const tokens = allowed ? available - 1 : available;
      policies.push({
        policy,
        limit: policy.capacity,
        remaining: Math.floor(tokens),
        resetSeconds: bucketResetSeconds(tokens, policy.capacity, policy.refillPerSecond),
      });
      if (available < 1)
        retryAfter = Math.max(retryAfter, (1 - available) / policy.refillPerSecond);
    } else {
      const count = policy.limit - available + (allowed ? 1 : 0);
      const resetSeconds = Math.max(
        1,
        Math.ceil(((window ?? 0) + 1) * policy.windowSeconds - nowMs / 1000),
      );
      policies.push({ policy, limit: policy.limit, remaining: policy.limit - count, resetSeconds });
      if (available < 1) retryAfter = Math.max(retryAfter, resetSeconds);
    }
  }
  return allowed
    ? { allowed, policies }
    : { allowed, policies, retryAfterSeconds: Math.max(1, ceilSeconds(retryAfter)) };
}

interface BucketState {
  tokens: number;
  atMs: number;
}
interface WindowState {
  window: number;
  count: number;
}

export interface MemoryRateLimiterOptions {
  /** Most subjects tracked at once; the least recently seen are forgotten first. Default 100,000. */
  maxSubjects?: number;
  /** Clock, for tests. Default `Date.now`. */
  now?: () => number;
}

/**
 * Exact limits for one process. Used when no Redis is configured, and as the
 * per-instance insurance while Redis is unreachable.
 */
export class MemoryRateLimiter implements RateLimiter {
  // lru-cache rather than a Map kept in use order: evicting a Map's oldest entry walks past every
  // entry deleted before it, which with many subjects made each new one cost microseconds.
  readonly #subjects: LRUCache<string, Map<string, BucketState | WindowState>>;
  readonly #now: () => number;

  constructor(options: MemoryRateLimiterOptions = {}) {
    this.#subjects = new LRUCache({ max: options.maxSubjects ?? 100_000 });
    this.#now = options.now ?? Date.now;
  }

  async consume(subject: string, policies: readonly RateLimitPolicy[]): Promise<RateLimitResult> {
    return this.consumeSync(subject, policies);
  }

  consumeSync(subject: string, policies: readonly RateLimitPolicy[]): RateLimitResult {
    const nowMs = this.#now();
    let states = this.#subjects.get(subject);
    if (!states) {
      states = new Map();
      this.#subjects.set(subject, states);
    }

    // First pass: what each policy has now, without charging anything.
    const current = policies.map((policy) => {
      if (policy.kind === 'token-bucket') {
        const prev = states.get(policy.name) as BucketState | undefined;
        const elapsed = prev ? Math.max(0, nowMs - prev.atMs) / 1000 : 0;
        const tokens = prev
          ? settleTokens(Math.min(policy.capacity, prev.tokens + elapsed * policy.refillPerSecond))
          : policy.capacity;
        return { policy, available: tokens };
      }
      const window = Math.floor(nowMs / 1000 / policy.windowSeconds);
      const prev = states.get(policy.name) as WindowState | undefined;
      const count = prev && prev.window === window ? prev.count : 0;
      return { policy, available: policy.limit - count, window, count };
    });
    const allowed = current.every((c) => c.available >= 1);
    for (const c of current) {
      if (c.policy.kind === 'token-bucket') {
        states.set(c.policy.name, { tokens: allowed ? c.available - 1 : c.available, atMs: nowMs });
      } else {
        states.set(c.policy.name, { window: c.window!, count: c.count! + (allowed ? 1 : 0) });
      }
    }
    return settlePolicies(current, allowed, nowMs);
  }
}
