import { describe, expect, it } from 'vitest';
import { KeygateConfigError } from './errors.js';
import { createKeygate } from './keygate.js';
import {
  DEFAULT_TIERS,
  MemoryRateLimiter,
  policiesFor,
  rateLimitHeaders,
  validateTier,
} from './rate-limit.js';
import type { PolicyState, RateLimitPolicy, RateLimitResult } from './types.js';

function bucket(capacity: number, refillPerSecond: number): RateLimitPolicy {
  return { name: 'burst', kind: 'token-bucket', capacity, refillPerSecond };
}
function daily(limit: number): RateLimitPolicy {
  return { name: 'daily', kind: 'fixed-window', limit, windowSeconds: 86_400 };
}

/** A limiter on a hand-driven clock. */
function limiterAt(start: number, options: { maxSubjects?: number } = {}) {
  const clock = { now: start };
  const limiter = new MemoryRateLimiter({ ...options, now: () => clock.now });
  return { clock, limiter };
}

function state(result: RateLimitResult, name: string): PolicyState {
  const found = result.policies.find((p) => p.policy.name === name);
  if (!found) throw new Error(`no policy ${name}`);
  return found;
}

const NOON = Date.UTC(2026, 2, 10, 12, 0, 0);

describe('MemoryRateLimiter: token bucket', () => {
  it('admits a burst of `capacity` requests, then rejects', async () => {
    const { limiter } = limiterAt(NOON);
    const policies = [bucket(5, 1), daily(1_000)];
    for (let i = 0; i < 5; i++) {
      expect((await limiter.consume('key_1', policies)).allowed).toBe(true);
    }
    const rejected = await limiter.consume('key_1', policies);
    expect(rejected.allowed).toBe(false);
    expect(rejected.retryAfterSeconds).toBe(1);
  });

  it('remaining drops by exactly one per admitted request', () => {
    const { limiter } = limiterAt(NOON);
    const policies = [bucket(10, 1), daily(100)];
    for (let i = 1; i <= 10; i++) {
      const result = limiter.consumeSync('key_1', policies);
      expect(result.allowed).toBe(true);
      expect(state(result, 'burst')).toMatchObject({ limit: 10, remaining: 10 - i });
      expect(state(result, 'daily')).toMatchObject({ limit: 100, remaining: 100 - i });
    }
  });

  it('a rejected request charges no policy', () => {
    const { clock, limiter } = limiterAt(NOON);
    const policies = [bucket(2, 1), daily(100)];
    limiter.consumeSync('key_1', policies);
    limiter.consumeSync('key_1', policies);
    for (let i = 0; i < 5; i++) {
      const rejected = limiter.consumeSync('key_1', policies);
      expect(rejected.allowed).toBe(false);
      expect(state(rejected, 'daily').remaining).toBe(98);
    }
    clock.now += 1_000;
    const admitted = limiter.consumeSync('key_1', policies);
    expect(admitted.allowed).toBe(true);
    expect(state(admitted, 'daily').remaining).toBe(97);
  });

  it('an exhausted daily quota leaves the bucket uncharged', () => {
    const { limiter } = limiterAt(NOON);
    const policies = [bucket(10, 1), daily(2)];
    limiter.consumeSync('key_1', policies);
    limiter.consumeSync('key_1', policies);
    const rejected = limiter.consumeSync('key_1', policies);
    expect(rejected.allowed).toBe(false);
    expect(state(rejected, 'burst').remaining).toBe(8);
    expect(state(rejected, 'daily').remaining).toBe(0);
    expect(limiter.consumeSync('key_1', policies).allowed).toBe(false);
    expect(state(limiter.consumeSync('key_1', policies), 'burst').remaining).toBe(8);
  });

  it('refills at fractional rates: 0.5 tokens/s gives one request every 2 s', () => {
    const { clock, limiter } = limiterAt(NOON);
    const policies = [bucket(1, 0.5)];
    expect(limiter.consumeSync('k', policies).allowed).toBe(true);
    clock.now += 1_000;
    const early = limiter.consumeSync('k', policies);
    expect(early.allowed).toBe(false);
    expect(early.retryAfterSeconds).toBe(1);
    clock.now += 999;
    expect(limiter.consumeSync('k', policies).allowed).toBe(false);
    clock.now += 1;
    expect(limiter.consumeSync('k', policies).allowed).toBe(true);
  });

  it('refills at 2.5 tokens/s: a token every 400 ms, never more than capacity', () => {
    const { clock, limiter } = limiterAt(NOON);
    const policies = [bucket(3, 2.5)];
    for (let i = 0; i < 3; i++) limiter.consumeSync('k', policies);
    expect(limiter.consumeSync('k', policies).allowed).toBe(false);
    clock.now += 399;
    expect(limiter.consumeSync('k', policies).allowed).toBe(false);
    clock.now += 1;
    expect(limiter.consumeSync('k', policies).allowed).toBe(true);
    expect(limiter.consumeSync('k', policies).allowed).toBe(false);
    clock.now += 3_600_000;
    const full = limiter.consumeSync('k', policies);
    expect(state(full, 'burst').remaining).toBe(2);
  });

  it.each([
    [0.1, 1_000],
    [0.1, 100],
    [0.2, 1],
    [0.05, 250],
    [2.5, 1],
    [0.3, 100],
  ])(
    'whole tokens stay whole: at %f/s polled every %i ms, admitted as soon as a token is due',
    (rate, poll) => {
      const { clock, limiter } = limiterAt(NOON);
      const policies = [bucket(1, rate)];
      limiter.consumeSync('k', policies);
      const due = NOON + Math.ceil(Math.round(1_000_000 / rate) / 1_000 / poll) * poll;
      let admittedAt = 0;
      while (admittedAt === 0) {
        clock.now += poll;
        if (limiter.consumeSync('k', policies).allowed) admittedAt = clock.now;
      }
      expect(admittedAt).toBe(due);
    },
  );

  it('Retry-After is an integer ≥ 1, and waiting that long is enough (and one second less is not)', () => {
    for (const rate of [0.1, 0.25, 0.3, 0.5, 0.7, 1, 3, 1_000]) {
      for (const waitedMs of [0, 250, 900, 1_700]) {
        const { clock, limiter } = limiterAt(NOON);
        const policies = [bucket(1, rate)];
        limiter.consumeSync('k', policies);
        clock.now += waitedMs;
        const rejected = limiter.consumeSync('k', policies);
        if (rejected.allowed) continue;
        const retry = rejected.retryAfterSeconds!;
        expect(Number.isInteger(retry)).toBe(true);
        expect(retry).toBeGreaterThanOrEqual(1);
        const exactSeconds = (1 - (waitedMs / 1_000) * rate) / rate;
        expect(retry).toBe(Math.max(1, Math.ceil(exactSeconds - 1e-9)));
        if (retry > 1) {
          clock.now += (retry - 1) * 1_000;
          expect(limiter.consumeSync('k', policies).allowed, `rate ${rate}`).toBe(false);
          clock.now += 1_000;
        } else {
          clock.now += 1_000;
        }
        expect(limiter.consumeSync('k', policies).allowed, `rate ${rate}`).toBe(true);
      }
    }
  });

  it('resetSeconds is when the bucket is full again: whole seconds, at least 1 after a request', () => {
    const { clock, limiter } = limiterAt(NOON);
    const policies = [bucket(10, 2)];
    expect(state(limiter.consumeSync('k', policies), 'burst').resetSeconds).toBe(1);
    let last = limiter.consumeSync('k', policies);
    for (let i = 0; i < 3; i++) last = limiter.consumeSync('k', policies);
    const burst = state(last, 'burst');
    expect(burst.remaining).toBe(5);
    expect(burst.resetSeconds).toBe(3);
    clock.now += burst.resetSeconds * 1_000;
    expect(state(limiter.consumeSync('k', policies), 'burst').remaining).toBe(9);

    const slow = limiterAt(NOON);
    const slowPolicies = [bucket(100, 0.3)];
    const reset = state(slow.limiter.consumeSync('k', slowPolicies), 'burst').resetSeconds;
    expect(reset).toBe(4);
  });

  it('keeps each subject separate', () => {
    const { limiter } = limiterAt(NOON);
    const policies = [bucket(1, 1)];
    expect(limiter.consumeSync('a', policies).allowed).toBe(true);
    expect(limiter.consumeSync('a', policies).allowed).toBe(false);
    expect(limiter.consumeSync('b', policies).allowed).toBe(true);
  });

  it('maxSubjects bounds memory: the least recently seen subject is forgotten', () => {
    const { limiter } = limiterAt(NOON, { maxSubjects: 2 });
    const policies = [bucket(5, 1)];
    limiter.consumeSync('a', policies);
    limiter.consumeSync('b', policies);
    limiter.consumeSync('a', policies);
    limiter.consumeSync('c', policies);
    // `a` was seen more recently than `b`, so `b` made room for `c`; `a` still has its count.
    expect(state(limiter.consumeSync('a', policies), 'burst').remaining).toBe(2);
    expect(state(limiter.consumeSync('b', policies), 'burst').remaining).toBe(4);
    // Bringing `b` back pushed out `c`, now the least recently seen.
    expect(state(limiter.consumeSync('c', policies), 'burst').remaining).toBe(4);
  });
});

describe('MemoryRateLimiter: daily window', () => {
  it('resets at UTC midnight', () => {
    const { clock, limiter } = limiterAt(Date.UTC(2026, 2, 10, 23, 59, 58, 500));
    const policies = [daily(1)];
    const first = limiter.consumeSync('k', policies);
    expect(first.allowed).toBe(true);
    expect(state(first, 'daily').resetSeconds).toBe(2);
    const rejected = limiter.consumeSync('k', policies);
    expect(rejected.allowed).toBe(false);
    expect(rejected.retryAfterSeconds).toBe(2);
    clock.now = Date.UTC(2026, 2, 10, 23, 59, 59, 999);
    expect(limiter.consumeSync('k', policies).allowed).toBe(false);
    clock.now = Date.UTC(2026, 2, 11, 0, 0, 0, 0);
    const next = limiter.consumeSync('k', policies);
    expect(next.allowed).toBe(true);
    expect(state(next, 'daily')).toMatchObject({ remaining: 0, resetSeconds: 86_400 });
  });

  it('resetSeconds counts down to the next UTC midnight', () => {
    const { limiter } = limiterAt(NOON);
    expect(state(limiter.consumeSync('k', [daily(10)]), 'daily').resetSeconds).toBe(43_200);
  });
});

describe('rateLimitHeaders', () => {
  const now = 1_700_000_000_500;
  const burstPolicy = bucket(10, 2);
  const dailyPolicy = daily(100);

  it('reports the policy closest to exhaustion and lists every policy', () => {
    const headers = rateLimitHeaders(
      {
        allowed: true,
        policies: [
          { policy: burstPolicy, limit: 10, remaining: 7, resetSeconds: 2 },
          { policy: dailyPolicy, limit: 100, remaining: 3, resetSeconds: 5_000 },
        ],
      },
      now,
    );
    expect(headers).toEqual({
      'X-RateLimit-Limit': '100',
      'X-RateLimit-Remaining': '3',
      'X-RateLimit-Reset': String(1_700_000_000 + 5_001),
      'RateLimit-Policy': '"burst";q=10;w=5, "daily";q=100;w=86400',
      RateLimit: '"burst";r=7;t=2, "daily";r=3;t=5000',
    });
  });

  it('picks the bucket when it is the tighter one; Reset is epoch seconds', () => {
    const headers = rateLimitHeaders(
      {
        allowed: true,
        policies: [
          { policy: burstPolicy, limit: 10, remaining: 1, resetSeconds: 5 },
          { policy: dailyPolicy, limit: 100, remaining: 50, resetSeconds: 5_000 },
        ],
      },
      now,
    );
    expect(headers['X-RateLimit-Limit']).toBe('10');
    expect(headers['X-RateLimit-Remaining']).toBe('1');
    const reset = Number(headers['X-RateLimit-Reset']);
    expect(Number.isInteger(reset)).toBe(true);
    expect(reset).toBe(Math.ceil(now / 1_000) + 5);
  });

  it('adds Retry-After in whole seconds (at least 1) only on rejection', () => {
    const policies = [{ policy: burstPolicy, limit: 10, remaining: 0, resetSeconds: 5 }];
    expect(rateLimitHeaders({ allowed: true, policies }, now)['Retry-After']).toBeUndefined();
    expect(
      rateLimitHeaders({ allowed: false, policies, retryAfterSeconds: 2.2 }, now)['Retry-After'],
    ).toBe('3');
    expect(
      rateLimitHeaders({ allowed: false, policies, retryAfterSeconds: 0 }, now)['Retry-After'],
    ).toBe('1');
    expect(rateLimitHeaders({ allowed: false, policies }, now)['Retry-After']).toBe('1');
  });

  it('emits nothing when there are no policies', () => {
    expect(rateLimitHeaders({ allowed: true, policies: [] }, now)).toEqual({});
  });

  it('matches what the limiter decided', () => {
    const { limiter } = limiterAt(NOON);
    const policies = policiesFor({ perSecond: 1, burst: 2, daily: 10 }, null);
    limiter.consumeSync('k', policies);
    const second = rateLimitHeaders(limiter.consumeSync('k', policies), NOON);
    expect(second['X-RateLimit-Limit']).toBe('2');
    expect(second['X-RateLimit-Remaining']).toBe('0');
    expect(second['X-RateLimit-Reset']).toBe(String(NOON / 1_000 + 2));
    expect(second['Retry-After']).toBeUndefined();
    const third = rateLimitHeaders(limiter.consumeSync('k', policies), NOON);
    expect(third['Retry-After']).toBe('1');
    expect(third['X-RateLimit-Remaining']).toBe('0');
  });
});

describe('policiesFor', () => {
  const tier = { perSecond: 100, burst: 1_000, daily: 1_000_000 };

  it('uses the tier when the key has no override', () => {
    expect(policiesFor(tier, null)).toEqual([
      { name: 'burst', kind: 'token-bucket', capacity: 1_000, refillPerSecond: 100 },
      { name: 'daily', kind: 'fixed-window', limit: 1_000_000, windowSeconds: 86_400 },
    ]);
  });

  it('overrides field by field', () => {
    expect(policiesFor(tier, { burst: 5 })).toEqual([
      { name: 'burst', kind: 'token-bucket', capacity: 5, refillPerSecond: 100 },
      { name: 'daily', kind: 'fixed-window', limit: 1_000_000, windowSeconds: 86_400 },
    ]);
    expect(policiesFor(tier, { perSecond: 0.5, daily: 7 })).toEqual([
      { name: 'burst', kind: 'token-bucket', capacity: 1_000, refillPerSecond: 0.5 },
      { name: 'daily', kind: 'fixed-window', limit: 7, windowSeconds: 86_400 },
    ]);
  });

  it.each([
    ['public', 1_000, 100, 1_000_000],
    ['secret', 10_000, 1_000, 10_000_000],
  ] as const)(
    'by default a %s key bursts to %d, refills at %d/s and is told its daily %d',
    (type, burst, perSecond, perDay) => {
      const { clock, limiter } = limiterAt(Date.UTC(2026, 2, 10, 12));
      const policies = policiesFor(DEFAULT_TIERS[type], null);
      let last: RateLimitResult | undefined;
      for (let i = 0; i < burst; i++) last = limiter.consumeSync('k', policies);
      expect(last!.allowed).toBe(true);
      expect(rateLimitHeaders(last!, clock.now)['RateLimit-Policy']).toBe(
        `"burst";q=${burst};w=${burst / perSecond}, "daily";q=${perDay};w=86400`,
      );
      const refused = limiter.consumeSync('k', policies);
      expect(refused.allowed).toBe(false);
      // One token is back after 1/perSecond of a second, not before.
      clock.now += 1_000 / perSecond - 1;
      expect(limiter.consumeSync('k', policies).allowed).toBe(false);
      clock.now += 1;
      expect(limiter.consumeSync('k', policies).allowed).toBe(true);
      // The bucket is empty again: refused, and a refused request is not charged to the day.
      const again = limiter.consumeSync('k', policies);
      expect(again.allowed).toBe(false);
      expect(state(again, 'daily').remaining).toBe(perDay - burst - 1);
    },
  );
});

describe('validateTier', () => {
  it('accepts positive limits and a fractional rate', () => {
    expect(() =>
      validateTier({ perSecond: 0.5, burst: 1, daily: 1 }, 'tiers.public'),
    ).not.toThrow();
    expect(() => validateTier({}, 'tiers.public')).not.toThrow();
  });

  it.each([
    ['burst', 0],
    ['burst', -1],
    ['burst', Number.NaN],
    ['burst', 1.5],
    ['burst', Number.POSITIVE_INFINITY],
    ['daily', 2.5],
    ['daily', 0],
    ['perSecond', 0],
    ['perSecond', -0.5],
    ['perSecond', Number.NaN],
  ])('refuses %s = %d', (field, value) => {
    let thrown: unknown;
    try {
      validateTier({ [field]: value }, 'tiers.secret');
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(KeygateConfigError);
    expect((thrown as KeygateConfigError).code).toBe('INVALID_OPTION');
    expect((thrown as Error).message).toContain(`tiers.secret.${field}`);
  });

  it('refuses a non-number', () => {
    expect(() => validateTier({ burst: '10' as unknown as number }, 'tiers.secret')).toThrow(
      KeygateConfigError,
    );
  });

  it('is applied once, when createKeygate is called', () => {
    expect(() => createKeygate({ tiers: { public: { burst: 0 } } })).toThrow(
      /tiers\.public\.burst/,
    );
    expect(() => createKeygate({ tiers: { secret: { perSecond: Number.NaN } } })).toThrow(
      KeygateConfigError,
    );
  });
});
