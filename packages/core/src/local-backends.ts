import { KeygateConfigError } from './errors.js';
import { MemoryRateLimiter } from './rate-limit.js';
import type { AuthFailureGuard, InvalidationBus, RateLimitPolicy } from './types.js';

export interface AuthFailureLimit {
  /** Failed attempts allowed per IP within the window. Default 20. */
  points?: number;
  /** Window length in seconds. Default 60. */
  durationSeconds?: number;
  /** How long an IP that used up its attempts is refused, in seconds. Default 300. */
  blockSeconds?: number;
}

export interface MemoryAuthFailureGuardOptions {
  /** Most IPs tracked at once; the least recently seen are forgotten first. Default 100,000. */
  maxIps?: number;
  /** Clock, for tests. Default `Date.now`. */
  now?: () => number;
}

/**
 * Per-IP failed-authentication counter for a single process: a fixed window of `points`
 * failures counted by the core's own `MemoryRateLimiter`, then `blockSeconds` refused.
 */
export class MemoryAuthFailureGuard implements AuthFailureGuard {
  readonly #counter: MemoryRateLimiter;
  readonly #policy: RateLimitPolicy;
  readonly #blockMs: number;
  readonly #maxIps: number;
  readonly #now: () => number;
  /** IPs refused until a time (ms); insertion order is expiry order, since every block lasts as long. */
  readonly #blockedUntil = new Map<string, number>();

  constructor(limit: AuthFailureLimit = {}, options: MemoryAuthFailureGuardOptions = {}) {
    const { points = 20, durationSeconds = 60, blockSeconds = 300 } = limit;
    const { maxIps = 100_000, now = Date.now } = options;
    for (const [name, value] of Object.entries({ points, durationSeconds, maxIps })) {
      if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
        throw new KeygateConfigError('INVALID_OPTION', `${name} must be a positive number`);
      }
    }
    if (typeof blockSeconds !== 'number' || !Number.isFinite(blockSeconds) || blockSeconds < 0) {
      throw new KeygateConfigError('INVALID_OPTION', 'blockSeconds must be 0 or more');
    }
    this.#policy = {
      name: 'auth-failures',
      kind: 'fixed-window',
      limit: points,
      windowSeconds: durationSeconds,
    };
    this.#blockMs = blockSeconds * 1000;
    this.#maxIps = maxIps;
    this.#now = now;
    this.#counter = new MemoryRateLimiter({ maxSubjects: maxIps, now });
  }

  async recordFailure(ip: string): Promise<number> {
    const nowMs = this.#now();
    const until = this.#blockedUntil.get(ip);
    if (until !== undefined && until > nowMs) return Math.max(1, Math.ceil((until - nowMs) / 1000));
    if (until !== undefined) this.#blockedUntil.delete(ip);
    const result = this.#counter.consumeSync(ip, [this.#policy]);
    if (result.allowed) return 0;
    if (this.#blockMs === 0) return result.retryAfterSeconds ?? 1;
    if (this.#blockedUntil.size >= this.#maxIps) {
      this.#blockedUntil.delete(this.#blockedUntil.keys().next().value!);
    }
    this.#blockedUntil.set(ip, nowMs + this.#blockMs);
    return Math.max(1, Math.ceil(this.#blockMs / 1000));
  }
}

/** Invalidation within one process (no Redis): other instances rely on the cache TTL. */
export class LocalInvalidationBus implements InvalidationBus {
  readonly #listeners = new Set<(keyId: string) => void>();

  async publish(keyId: string): Promise<void> {
    for (const listener of this.#listeners) listener(keyId);
  }

  async subscribe(onInvalidate: (keyId: string) => void): Promise<void> {
    this.#listeners.add(onInvalidate);
  }

  async close(): Promise<void> {
    this.#listeners.clear();
  }
}
