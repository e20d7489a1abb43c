import { RateLimiterMemory } from 'rate-limiter-flexible';
import type { AuthFailureGuard, InvalidationBus } from './types.js';

export interface AuthFailureLimit {
  /** Failed attempts allowed per IP within the window. Default 20. */
  points?: number;
  /** Window length in seconds. Default 60. */
  durationSeconds?: number;
  /** How long an IP that used up its attempts is refused, in seconds. Default 300. */
  blockSeconds?: number;
}

/** Per-IP failed-authentication counter for a single process. */
export class MemoryAuthFailureGuard implements AuthFailureGuard {
  readonly #limiter: RateLimiterMemory;

  constructor(limit: AuthFailureLimit = {}) {
    this.#limiter = new RateLimiterMemory({
      keyPrefix: 'keygate-auth-fail',
      points: limit.points ?? 20,
      duration: limit.durationSeconds ?? 60,
      blockDuration: limit.blockSeconds ?? 300,
    });
  }

  async recordFailure(ip: string): Promise<number> {
    try {
      await this.#limiter.consume(ip);
      return 0;
    } catch (rejection) {
      if (rejection instanceof Error) throw rejection;
      return Math.max(1, Math.ceil((rejection as { msBeforeNext: number }).msBeforeNext / 1000));
    }
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
