/**
 * SPEC §4, leased mode: instances spend tokens Redis leased them, so most requests make no Redis
 * call, and all instances together never admit more than exact mode would. Simulated instances
 * are limiters on separate connections to the shared Redis, each under the test's own namespace.
 */
import {
  createKeygate,
  type Keygate,
  MemoryKeyStore,
  MemoryRateLimiter,
  type RateLimiter,
  type RateLimitPolicy,
  type RateLimitResult,
} from '@keygate/core';
import {
  connectRedis,
  LeasedRedisRateLimiter,
  type LeasedRedisRateLimiterOptions,
  RedisInvalidationBus,
  RedisRateLimiter,
} from '@keygate/redis';
import fc from 'fast-check';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  connectSharedRedis,
  deleteKeys,
  SHARED_REDIS_URL,
  uniqueName,
  waitFor,
} from './support/redis.js';

const namespace = uniqueName('keygate-leased');
// Generous timeouts: these tests check the lease arithmetic, not the fallback, on a busy machine.
const timeoutMs = 5_000;
const quietLogger = { warn: vi.fn(), info: vi.fn() };
let admin: Redis;

beforeAll(async () => {
  admin = await connectSharedRedis();
});

const opened: Array<{ limiter: LeasedRedisRateLimiter; client: Redis }> = [];
afterEach(async () => {
  for (const { limiter, client } of opened.splice(0)) {
    await limiter.close();
    client.disconnect();
  }
});

afterAll(async () => {
  await deleteKeys(admin, `${namespace}:*`);
  admin.disconnect();
});

/** One simulated instance: a limiter on a connection of its own. */
async function instance(
  options: Partial<LeasedRedisRateLimiterOptions> = {},
): Promise<{ limiter: LeasedRedisRateLimiter; client: Redis; calls: () => number }> {
  const client = connectRedis(SHARED_REDIS_URL, { commandTimeout: timeoutMs });
  await waitFor('the client to connect', () => client.status === 'ready');
  const limiter = new LeasedRedisRateLimiter({
    client,
    namespace,
    timeoutMs,
    logger: quietLogger,
    ...options,
  });
  const spy = vi.spyOn(client as unknown as { keygateLease: () => unknown }, 'keygateLease');
  opened.push({ limiter, client });
  return { limiter, client, calls: () => spy.mock.calls.length };
}

/** Refill so slow that no token comes back during a test. */
const STILL = 1e-6;

function bucket(capacity: number, refillPerSecond = STILL): RateLimitPolicy {
  return { name: 'burst', kind: 'token-bucket', capacity, refillPerSecond };
}
function daily(limit: number): RateLimitPolicy {
  return { name: 'daily', kind: 'fixed-window', limit, windowSeconds: 86_400 };
}

/** What the key's policies hold in Redis: bucket tokens (whole), the day's count, and the leases on record. */
async function stored(limiter: LeasedRedisRateLimiter, subject: string) {
  const [tokens, count, leases] = await Promise.all([
    admin.hget(limiter.keyOf(subject), limiter.fieldOf('burst', 'tokens')),
    admin.hget(limiter.keyOf(subject), limiter.fieldOf('daily', 'count')),
    admin.hlen(limiter.leaseKeyOf(subject)),
  ]);
  return {
    tokens: tokens === null ? null : Math.floor(Number(tokens) + 1e-6),
    count: Number(count ?? 0),
    leases,
  };
}

/** The parts of a result exact mode and leased mode must agree on; resets and Retry-After may differ by the second they are read in. */
function comparable(result: RateLimitResult) {
  return {
    allowed: result.allowed,
    policies: result.policies.map((s) => ({
      name: s.policy.name,
      limit: s.limit,
      remaining: s.remaining,
    })),
  };
}

async function sequence(
  target: Pick<RateLimiter, 'consume'>,
  subject: string,
  policies: RateLimitPolicy[],
  times: number,
): Promise<RateLimitResult[]> {
  const results: RateLimitResult[] = [];
  for (let i = 0; i < times; i++) results.push(await target.consume(subject, policies));
  return results;
}

const admitted = (results: RateLimitResult[]) => results.filter((r) => r.allowed).length;

describe('LeasedRedisRateLimiter on one instance', () => {
  it('answers request by request what exact mode answers: burst exhausted first', async () => {
    const { limiter } = await instance();
    const policies = [bucket(70), daily(1_000)];
    const subject = uniqueName('key');
    const leased = await sequence(limiter, subject, policies, 75);
    const exact = await sequence(new MemoryRateLimiter(), subject, policies, 75);
    expect(leased.map(comparable)).toEqual(exact.map(comparable));
    expect(admitted(leased)).toBe(70);
    expect(leased.at(-1)!.retryAfterSeconds).toBe(exact.at(-1)!.retryAfterSeconds);
  });

  it('answers request by request what exact mode answers: day exhausted first', async () => {
    const { limiter } = await instance();
    const policies = [bucket(1_000), daily(70)];
    const subject = uniqueName('key');
    const leased = await sequence(limiter, subject, policies, 75);
    const exact = await sequence(new MemoryRateLimiter(), subject, policies, 75);
    expect(leased.map(comparable)).toEqual(exact.map(comparable));
    const refused = leased.at(-1)!;
    expect(refused.allowed).toBe(false);
    // Retry-After: the rest of the UTC day.
    const untilMidnight = 86_400 - ((Date.now() / 1000) % 86_400);
    expect(Math.abs(refused.retryAfterSeconds! - untilMidnight)).toBeLessThan(5);
  });

  it('makes a handful of Redis calls for a thousand requests far from the limits', async () => {
    const { limiter, calls } = await instance();
    const results = await sequence(
      limiter,
      uniqueName('key'),
      [bucket(10_000, 1_000), daily(10_000_000)],
      1_000,
    );
    expect(admitted(results)).toBe(1_000);
    expect(calls()).toBeLessThanOrEqual(10);
  });

  it('shares one Redis call among concurrent requests for a key', async () => {
    const { limiter, calls } = await instance();
    const results = await Promise.all(
      Array.from({ length: 200 }, () =>
        limiter.consume('shared-call', [bucket(10_000, 1_000), daily(10_000_000)]),
      ),
    );
    expect(admitted(results)).toBe(200);
    // The first call, asked by one request, then leases sized to how fast the first went.
    expect(calls()).toBeLessThanOrEqual(3);
  });

  it('charges nothing for a rejected request, and gives back what is unspent on close', async () => {
    const { limiter } = await instance();
    const policies = [bucket(200), daily(1_000)];
    const subject = uniqueName('key');
    expect(admitted(await sequence(limiter, subject, policies, 150))).toBe(150);
    await limiter.close();
    expect(await stored(limiter, subject)).toEqual({ tokens: 50, count: 150, leases: 0 });

    const { limiter: next } = await instance();
    const results = await Promise.all(
      Array.from({ length: 100 }, () => next.consume(subject, policies)),
    );
    expect(admitted(results)).toBe(50);
    expect(results.filter((r) => !r.allowed).every((r) => r.retryAfterSeconds! >= 1)).toBe(true);
    await next.close();
    expect(await stored(next, subject)).toEqual({ tokens: 0, count: 200, leases: 0 });
  });

  it('gives back a lease that is not used for idleMs', async () => {
    const { limiter } = await instance({ idleMs: 200 });
    const policies = [bucket(10_000), daily(100_000)];
    const subject = uniqueName('key');
    expect(admitted(await sequence(limiter, subject, policies, 5))).toBe(5);
    // A lease is out: Redis has charged more than the 5 requests.
    expect((await stored(limiter, subject)).count).toBeGreaterThan(5);
    await waitFor(
      'the idle lease to go back',
      async () => (await stored(limiter, subject)).leases === 0,
    );
    expect(await stored(limiter, subject)).toEqual({ tokens: 9_995, count: 5, leases: 0 });
  });

  it('forgets a key whose lease it spent once idle, and never gets that lease back', async () => {
    const { limiter } = await instance({ idleMs: 100, maxLeaseShare: 1 });
    const policies = [bucket(10), daily(1_000)];
    const subject = uniqueName('key');
    // One token, then the other nine in one lease, all spent.
    expect(admitted(await sequence(limiter, subject, policies, 10))).toBe(10);
    expect((await stored(limiter, subject)).leases).toBe(1);
    // Forgotten after 100 ms idle; the spent lease stays on record for Redis to reclaim.
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(admitted(await sequence(limiter, subject, policies, 5))).toBe(0);
    await limiter.close();
    expect(await stored(limiter, subject)).toEqual({ tokens: 0, count: 10, leases: 0 });
  });

  it('asks again when a key’s policies change', async () => {
    const { limiter } = await instance();
    const subject = uniqueName('key');
    expect(admitted(await sequence(limiter, subject, [bucket(1_000), daily(100_000)], 10))).toBe(
      10,
    );
    const lowered = await sequence(limiter, subject, [bucket(15), daily(100_000)], 20);
    expect(lowered[0]!.policies[0]!.limit).toBe(15);
    // As in exact mode, the bucket is cut to its new capacity.
    const exact = new MemoryRateLimiter();
    await sequence(exact, subject, [bucket(1_000), daily(100_000)], 10);
    expect(lowered.map(comparable)).toEqual(
      (await sequence(exact, subject, [bucket(15), daily(100_000)], 20)).map(comparable),
    );
    expect(admitted(lowered)).toBe(15);
  });
});

describe('LeasedRedisRateLimiter and RedisRateLimiter', () => {
  it('read and charge the same hash', async () => {
    const { limiter, client } = await instance();
    const exact = new RedisRateLimiter({ client, namespace, timeoutMs, logger: quietLogger });
    const policies = [bucket(10), daily(100)];
    const subject = uniqueName('key');
    expect(limiter.keyOf(subject)).toBe(exact.keyOf(subject));
    expect(admitted(await sequence(exact, subject, policies, 3))).toBe(3);
    // A one-token lease of the 7 left, spent.
    const [leased] = await sequence(limiter, subject, policies, 1);
    expect(leased!.policies.map((s) => s.remaining)).toEqual([6, 96]);
    await limiter.close();
    expect(await stored(limiter, subject)).toEqual({ tokens: 6, count: 4, leases: 0 });
    const [after] = await sequence(exact, subject, policies, 1);
    expect(after!.policies.map((s) => s.remaining)).toEqual([5, 95]);
  });
});

describe('LeasedRedisRateLimiter across instances', () => {
  /** 3×B concurrent requests over three instances; returns how many were admitted. */
  async function burstOverThree(policies: RateLimitPolicy[], requests: number): Promise<number> {
    const instances = await Promise.all([instance(), instance(), instance()]);
    const subject = uniqueName('key');
    const results = await Promise.all(
      Array.from({ length: requests }, (_, i) =>
        instances[i % 3]!.limiter.consume(subject, policies),
      ),
    );
    await Promise.all(instances.map((i) => i.limiter.close()));
    const after = await stored(instances[0]!.limiter, subject);
    // Nothing is lost or made up: every token is either admitted or back in Redis.
    expect(after.leases).toBe(0);
    expect(after.count).toBe(admitted(results));
    return admitted(results);
  }

  it('admit at most the burst, and nearly all of it (5 runs)', async () => {
    const runs: number[] = [];
    for (let run = 0; run < 5; run++)
      runs.push(await burstOverThree([bucket(200), daily(10_000)], 600));
    console.info('leased, 3 instances in-process, burst 200, 600 requests: admitted per run', runs);
    for (const count of runs) {
      expect(count).toBeLessThanOrEqual(200);
      expect(count).toBeGreaterThanOrEqual(190);
    }
  });

  it('admit at most the daily limit when it binds, and nearly all of it (5 runs)', async () => {
    const runs: number[] = [];
    for (let run = 0; run < 5; run++)
      runs.push(await burstOverThree([bucket(10_000), daily(200)], 600));
    console.info('leased, 3 instances in-process, daily 200, 600 requests: admitted per run', runs);
    for (const count of runs) {
      expect(count).toBeLessThanOrEqual(200);
      expect(count).toBeGreaterThanOrEqual(190);
    }
  });

  it('count leased tokens against a refilling bucket: no burst larger than exact mode allows', async () => {
    // Large leases, kept while unused, so that a bucket refilling behind them would show.
    const a = await instance({ maxLeaseShare: 0.5, idleMs: 60_000 });
    const b = await instance({ maxLeaseShare: 0.5 });
    const policies = [bucket(100, 40), daily(100_000)];
    const subject = uniqueName('key');
    expect(admitted(await sequence(a.limiter, subject, policies, 2))).toBe(2);
    expect((await stored(a.limiter, subject)).leases).toBe(1);
    // A holds most of a half-bucket lease; at 40/s the bucket alone would be full again after 1.25 s.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const started = performance.now();
    const flood = await Promise.all(
      Array.from({ length: 300 }, (_, i) => (i % 2 ? a : b).limiter.consume(subject, policies)),
    );
    const seconds = (performance.now() - started) / 1000;
    // Exact mode admits at most the capacity plus what refills during the flood.
    expect(admitted(flood)).toBeLessThanOrEqual(100 + Math.ceil(40 * seconds));
    expect(admitted(flood)).toBeGreaterThanOrEqual(90);
  });

  it('reclaim the lease of an instance that died, once it has expired', async () => {
    const policies = [bucket(100, 100), daily(100_000)];
    const subject = uniqueName('key');
    const dead = await instance({ leaseMs: 300, idleMs: 100, timeoutMs: 300, maxLeaseShare: 0.5 });
    expect(admitted(await sequence(dead.limiter, subject, policies, 2))).toBe(2);
    // It stops answering: no lease goes back from it.
    dead.client.disconnect();
    // Idle leases are kept past the test: closing is what settles with Redis, not the sweeper
    // (which forgets a spent lease without a call, leaving it for Redis to reclaim).
    const { limiter } = await instance({ idleMs: 60_000 });
    const held = await limiter.consume(subject, policies);
    // While the dead instance's lease is on record, its tokens are not in the bucket.
    expect(held.policies[0]!.remaining).toBeLessThan(60);
    expect(await admin.hlen(limiter.leaseKeyOf(subject))).toBe(2);
    // Expired (300 ms) and past its grace (2 × 100 ms + 300 ms), Redis reclaims it as spent.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    await limiter.close();
    expect(await admin.hlen(limiter.leaseKeyOf(subject))).toBe(0);
    // Its tokens were spent as far as anyone knows; the bucket refills from there (100/s).
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const { limiter: next } = await instance();
    const refilled = await next.consume(subject, policies);
    expect(refilled.policies[0]!.remaining).toBe(99);
  });
});

describe('key changes', () => {
  it('make every instance give back its lease of the key', async () => {
    const store = new MemoryKeyStore();
    // Leases that would otherwise be kept for a minute, unused or not.
    const options = { idleMs: 60_000, leaseMs: 60_000 };
    const instances = await Promise.all([instance(options), instance(options)]);
    const gates: Keygate[] = instances.map(({ limiter, client }) =>
      createKeygate({
        store,
        limiter,
        invalidation: new RedisInvalidationBus({ client, namespace, logger: quietLogger }),
        auditSinks: [],
      }),
    );
    const { secret, key } = await gates[0]!.keys.create({
      name: 'leased',
      scopes: ['read:data'],
      rateLimit: { burst: 10_000, perSecond: 0.001, daily: 1_000_000 },
    });
    const request = {
      method: 'GET',
      url: '/v1/data',
      headers: new Headers({ 'x-api-key': secret }),
      ip: '203.0.113.9',
    };
    for (const gate of gates) {
      for (let i = 0; i < 3; i++) expect((await gate.authenticate(request)).ok).toBe(true);
    }
    // Both instances hold leases: Redis has charged the day more than the 6 requests.
    const limiter = instances[0]!.limiter;
    expect(await admin.hlen(limiter.leaseKeyOf(key.id))).toBe(2);
    expect((await stored(limiter, key.id)).count).toBeGreaterThan(6);

    await gates[0]!.keys.update(key.id, {
      rateLimit: { burst: 50, perSecond: 0.001, daily: 1_000_000 },
    });
    await waitFor('both instances to give back their leases', async () => {
      const now = await stored(limiter, key.id);
      return now.count === 6;
    });
    const lowered = await gates[1]!.authenticate(request);
    expect(lowered.headers['X-RateLimit-Limit']).toBe('50');
    for (const gate of gates) await gate.close();
  });
});

describe('lease arithmetic against the exact limiter (property)', () => {
  type Step =
    | { kind: 'requests'; instance: number; count: number }
    | { kind: 'invalidate'; instance: number }
    | { kind: 'restart'; instance: number };

  const step: fc.Arbitrary<Step> = fc.oneof(
    {
      weight: 6,
      arbitrary: fc.record({
        kind: fc.constant('requests' as const),
        instance: fc.nat(2),
        count: fc.integer({ min: 1, max: 25 }),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({ kind: fc.constant('invalidate' as const), instance: fc.nat(2) }),
    },
    {
      weight: 1,
      arbitrary: fc.record({ kind: fc.constant('restart' as const), instance: fc.nat(2) }),
    },
  );

  it('never admits more than the exact limiter, after any interleaving across three instances, and loses no token', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 120 }),
        fc.integer({ min: 1, max: 120 }),
        fc.constantFrom(1 / 32, 1 / 4, 1),
        fc.array(step, { minLength: 1, maxLength: 20 }),
        async (capacity, limit, maxLeaseShare, steps) => {
          const policies = [bucket(capacity), daily(limit)];
          const subject = uniqueName('prop');
          const instances = await Promise.all([0, 1, 2].map(() => instance({ maxLeaseShare })));
          const exact = new MemoryRateLimiter();
          let leasedAdmitted = 0;
          let exactAdmitted = 0;
          for (const s of steps) {
            const target = instances[s.instance]!;
            if (s.kind === 'requests') {
              // Concurrent on one instance; the exact limiter sees the same requests, one by one.
              const results = await Promise.all(
                Array.from({ length: s.count }, () => target.limiter.consume(subject, policies)),
              );
              leasedAdmitted += admitted(results);
              exactAdmitted += admitted(await sequence(exact, subject, policies, s.count));
              expect(leasedAdmitted).toBeLessThanOrEqual(exactAdmitted);
            } else if (s.kind === 'invalidate') {
              target.limiter.invalidate(subject);
            } else {
              await target.limiter.close();
              instances[s.instance] = await instance({ maxLeaseShare });
            }
          }
          await Promise.all(instances.map((i) => i.limiter.close()));
          // Every token is either admitted or back in Redis; none is out in a lease.
          const after = await stored(instances[0]!.limiter, subject);
          expect(after.leases).toBe(0);
          expect(after.count).toBe(leasedAdmitted);
          // A bucket back to full may have expired: missing reads as full.
          expect(after.tokens ?? capacity).toBe(capacity - leasedAdmitted);
        },
      ),
      { numRuns: 40 },
    );
  });
});
