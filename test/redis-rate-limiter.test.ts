import {
  MemoryRateLimiter,
  policiesFor,
  type RateLimitPolicy,
  type RateLimitResult,
  rateLimitHeaders,
} from '@keygate/core';
import { connectRedis, RedisRateLimiter, whenReady } from '@keygate/redis';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  connectSharedRedis,
  deleteKeys,
  SHARED_REDIS_URL,
  startRedisServer,
  uniqueName,
  waitFor,
} from './support/redis.js';

const namespace = uniqueName('keygate-test');
// Generous timeouts: these tests check Redis's arithmetic, not the fallback, on a possibly busy machine.
const patient = { commandTimeout: 5_000 };
const timeoutMs = 5_000;
const quietLogger = { warn: vi.fn(), info: vi.fn() };
let admin: Redis;
let client: Redis;
let limiter: RedisRateLimiter;

beforeAll(async () => {
  admin = await connectSharedRedis();
  client = connectRedis(SHARED_REDIS_URL, patient);
  await new Promise((resolve) => client.once('ready', resolve));
  limiter = new RedisRateLimiter({ client, namespace, timeoutMs, logger: quietLogger });
});

afterAll(async () => {
  await deleteKeys(admin, `${namespace}:*`);
  client.disconnect();
  admin.disconnect();
});

/** Refill so slow that no token comes back during a test. */
const STILL = 1e-6;

function bucket(capacity: number, refillPerSecond = STILL, name = 'burst'): RateLimitPolicy {
  return { name, kind: 'token-bucket', capacity, refillPerSecond };
}
function daily(limit: number): RateLimitPolicy {
  return { name: 'daily', kind: 'fixed-window', limit, windowSeconds: 86_400 };
}

async function run(
  target: { consume: MemoryRateLimiter['consume'] },
  subject: string,
  policies: RateLimitPolicy[],
  times: number,
): Promise<RateLimitResult[]> {
  const results: RateLimitResult[] = [];
  for (let i = 0; i < times; i++) results.push(await target.consume(subject, policies));
  return results;
}

/** The parts of a result both limiters must agree on exactly; the day's reset may differ by the second it is read in. */
function comparable(result: RateLimitResult) {
  return {
    allowed: result.allowed,
    retryAfterSeconds: result.retryAfterSeconds,
    policies: result.policies.map((s) => ({
      name: s.policy.name,
      limit: s.limit,
      remaining: s.remaining,
      resetSeconds: s.policy.kind === 'fixed-window' ? 'day' : s.resetSeconds,
    })),
  };
}

describe('RedisRateLimiter arithmetic', () => {
  it('matches MemoryRateLimiter for the same sequence: burst exhausted first', async () => {
    const policies = [bucket(5), daily(100)];
    const subject = uniqueName('key');
    const fromRedis = await run(limiter, subject, policies, 8);
    const fromMemory = await run(new MemoryRateLimiter(), subject, policies, 8);
    expect(fromRedis.map(comparable)).toEqual(fromMemory.map(comparable));
    expect(fromRedis.map((r) => r.allowed)).toEqual([
      ...Array(5).fill(true),
      ...Array(3).fill(false),
    ]);
    expect(fromRedis.map((r) => r.policies[0]!.remaining)).toEqual([4, 3, 2, 1, 0, 0, 0, 0]);
    expect(fromRedis.map((r) => r.policies[1]!.remaining)).toEqual([
      99, 98, 97, 96, 95, 95, 95, 95,
    ]);
    // One token per 10⁶ s: a rejected request waits a whole token's refill time.
    expect(fromRedis[5]!.retryAfterSeconds).toBe(1_000_000);
    expect(fromRedis[0]!.policies[0]!.resetSeconds).toBe(1_000_000);
    expect(fromRedis[4]!.policies[0]!.resetSeconds).toBe(5_000_000);
  });

  it('matches MemoryRateLimiter for the same sequence: day exhausted first', async () => {
    const policies = [bucket(100), daily(3)];
    const subject = uniqueName('key');
    const fromRedis = await run(limiter, subject, policies, 5);
    const fromMemory = await run(new MemoryRateLimiter(), subject, policies, 5);
    const withoutRetry = (r: RateLimitResult) => ({ ...comparable(r), retryAfterSeconds: 0 });
    expect(fromRedis.map(withoutRetry)).toEqual(fromMemory.map(withoutRetry));
    const untilMidnight = 86_400 - (Math.floor(Date.now() / 1000) % 86_400);
    for (const result of fromRedis.slice(3)) {
      expect(result.allowed).toBe(false);
      expect(Math.abs(result.retryAfterSeconds! - untilMidnight)).toBeLessThanOrEqual(1);
      expect(Math.abs(result.policies[1]!.resetSeconds - untilMidnight)).toBeLessThanOrEqual(1);
    }
    expect(fromRedis.map((r) => r.policies[1]!.remaining)).toEqual([2, 1, 0, 0, 0]);
  });

  it('produces the same headers as MemoryRateLimiter for the default tiers', async () => {
    const policies = policiesFor({ perSecond: 100, burst: 1_000, daily: 1_000_000 }, null);
    const subject = uniqueName('key');
    const [fromRedis] = await run(limiter, subject, policies, 1);
    const [fromMemory] = await run(new MemoryRateLimiter(), subject, policies, 1);
    const now = Date.now();
    // The day's reset is read on two clocks a moment apart; everything else must be identical.
    const headers = (result: RateLimitResult): Record<string, string> => {
      const all = rateLimitHeaders(result, now);
      return { ...all, RateLimit: all.RateLimit!.replace(/("daily";r=\d+;t=)\d+/, '$1…') };
    };
    const redisHeaders = headers(fromRedis!);
    expect(redisHeaders).toEqual(headers(fromMemory!));
    expect(redisHeaders['X-RateLimit-Remaining']).toBe('999');
    expect(redisHeaders['X-RateLimit-Limit']).toBe('1000');
  });

  it('handles fractional refill rates (0.001/s)', async () => {
    const subject = uniqueName('key');
    const results = await run(limiter, subject, [bucket(2, 0.001)], 3);
    expect(results.map((r) => r.allowed)).toEqual([true, true, false]);
    expect(results.map((r) => r.policies[0]!.remaining)).toEqual([1, 0, 0]);
    expect(results[0]!.policies[0]!.resetSeconds).toBe(1_000);
    expect(results[1]!.policies[0]!.resetSeconds).toBe(2_000);
    expect(results[2]!.retryAfterSeconds).toBe(1_000);
    expect(Number.isInteger(results[2]!.policies[0]!.resetSeconds)).toBe(true);
  });

  it('refills on Redis time', async () => {
    const subject = uniqueName('key');
    const policies = [bucket(1, 20)];
    expect((await limiter.consume(subject, policies)).allowed).toBe(true);
    const rejected = await limiter.consume(subject, policies);
    expect(rejected.allowed).toBe(false);
    expect(rejected.retryAfterSeconds).toBe(1);
    await new Promise((resolve) => setTimeout(resolve, 80));
    expect((await limiter.consume(subject, policies)).allowed).toBe(true);
  });

  it('lets a bucket key expire when the bucket would be full again', async () => {
    const subject = uniqueName('key');
    const policies = [bucket(1, 10)];
    expect((await limiter.consume(subject, policies)).allowed).toBe(true);
    const ttl = await admin.pttl(limiter.keyOf(subject));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(100);
  });
});

describe('RedisRateLimiter storage', () => {
  it('keeps a subject’s policies in one hash under its hash tag, expiring with the last', async () => {
    const subject = uniqueName('key');
    await limiter.consume(subject, [bucket(10, 1), daily(1_000)]);
    const key = `${namespace}:rl:{${subject}}`;
    expect(limiter.keyOf(subject)).toBe(key);
    expect(limiter.fieldOf('daily', 'count')).toBe('daily:count');
    const [seconds] = await admin.time();
    const stored = await admin.hgetall(key);
    expect(Object.keys(stored).sort()).toEqual([
      'burst:at',
      'burst:full',
      'burst:tokens',
      'daily:count',
      'daily:window',
    ]);
    expect(stored).toMatchObject({
      'burst:tokens': '9',
      'daily:window': String(Math.floor(Date.now() / 86_400_000)),
      'daily:count': '1',
    });
    // Time to full: one token at 1/s, counted from the `at` the bucket was charged at.
    const full = Number(stored['burst:full']) - Number(stored['burst:at']) / 1000;
    expect(full).toBeGreaterThan(999);
    expect(full).toBeLessThanOrEqual(1_000);
    expect(Number(stored['burst:at']) / 1e6).toBeCloseTo(Number(seconds), -1);
    // The hash lives as long as its longest policy: the day's counter, to UTC midnight.
    const expiry = Date.now() + (await admin.pttl(key));
    const midnight = (Math.floor(Date.now() / 86_400_000) + 1) * 86_400_000;
    expect(Math.abs(expiry - midnight)).toBeLessThan(2_000);
  });

  it('reads a bucket past the time it would be full as missing, even with new limits', async () => {
    const subject = uniqueName('key');
    // Full again 100 ms after this request; the day keeps the hash until midnight.
    await limiter.consume(subject, [bucket(1, 10), daily(1_000)]);
    await new Promise((resolve) => setTimeout(resolve, 150));
    // A larger, still bucket: fresh (as a key that had expired), not 1 token plus 150 ms of refill.
    const result = await limiter.consume(subject, [bucket(5), daily(1_000)]);
    expect(result.allowed).toBe(true);
    expect(result.policies[0]!.remaining).toBe(4);
    expect(result.policies[1]!.remaining).toBe(998);
  });

  it('reads a window whose index has passed as fresh', async () => {
    const subject = uniqueName('key');
    const second: RateLimitPolicy = {
      name: 'second',
      kind: 'fixed-window',
      limit: 1,
      windowSeconds: 1,
    };
    const policies = [second, daily(1_000)];
    expect((await limiter.consume(subject, policies)).allowed).toBe(true);
    const key = limiter.keyOf(subject);
    const window = Number(await admin.hget(key, limiter.fieldOf('second', 'window')));
    await waitFor(
      'the next second',
      async () => Math.floor(Number((await admin.time())[0])) > window,
    );
    const result = await limiter.consume(subject, policies);
    expect(result.allowed).toBe(true);
    expect(await admin.hget(key, limiter.fieldOf('second', 'window'))).toBe(String(window + 1));
    expect(await admin.hget(key, limiter.fieldOf('second', 'count'))).toBe('1');
    expect(await admin.hget(key, limiter.fieldOf('daily', 'count'))).toBe('2');
  });

  it('a request rejected by the burst limit does not count against the day', async () => {
    const subject = uniqueName('key');
    const policies = [bucket(2), daily(10)];
    const results = await run(limiter, subject, policies, 7);
    expect(results.filter((r) => r.allowed)).toHaveLength(2);
    expect(results.at(-1)!.policies[1]!.remaining).toBe(8);
    expect(await admin.hget(limiter.keyOf(subject), limiter.fieldOf('daily', 'count'))).toBe('2');
  });

  it('a request rejected by the daily limit takes no token from the bucket', async () => {
    const subject = uniqueName('key');
    const policies = [bucket(10), daily(2)];
    const results = await run(limiter, subject, policies, 6);
    expect(results.filter((r) => r.allowed)).toHaveLength(2);
    expect(results.at(-1)!.policies[0]!.remaining).toBe(8);
    expect(
      Number(await admin.hget(limiter.keyOf(subject), limiter.fieldOf('burst', 'tokens'))),
    ).toBeCloseTo(8, 3);
  });

  it('sends exactly one EVAL/EVALSHA per consume, whatever the number of policies', async () => {
    const spied = connectRedis(SHARED_REDIS_URL, patient);
    await new Promise((resolve) => spied.once('ready', resolve));
    const counted = new RedisRateLimiter({
      client: spied,
      namespace,
      timeoutMs,
      logger: quietLogger,
    });
    const sent: string[] = [];
    const sendCommand = spied.sendCommand.bind(spied);
    spied.sendCommand = (command, stream) => {
      sent.push(command.name);
      return sendCommand(command, stream);
    };
    const subject = uniqueName('key');
    const policies = [bucket(3), daily(100), bucket(50, 5, 'minute')];
    for (let i = 0; i < 5; i++) {
      sent.length = 0;
      await counted.consume(subject, policies);
      expect(sent).toHaveLength(1);
      expect(['eval', 'evalsha']).toContain(sent[0]);
    }
    spied.disconnect();
  });
});

/** Calls of each command the server has run (scripts' commands included), from `INFO commandstats`. */
async function commandCalls(redis: Redis): Promise<Map<string, number>> {
  const calls = new Map<string, number>();
  for (const match of (await redis.info('commandstats')).matchAll(
    /^cmdstat_(\S+?):calls=(\d+)/gm,
  )) {
    calls.set(match[1]!, Number(match[2]));
  }
  return calls;
}

/** What ran between two `commandCalls`, leaving out the `INFO` that read them. */
function commandsRun(before: Map<string, number>, after: Map<string, number>) {
  const run: Record<string, number> = {};
  for (const [name, calls] of after) {
    const delta = calls - (before.get(name) ?? 0);
    if (delta > 0 && name !== 'info') run[name] = delta;
  }
  return run;
}

describe('RedisRateLimiter commands', () => {
  // A private server, so no other test's commands are counted (the shared one's stats are left alone).
  it('runs 4 commands for an admitted request and 2, writing nothing, for a rejected one', async () => {
    const server = await startRedisServer();
    const own = connectRedis(server.url, patient);
    const probe = connectRedis(server.url, patient);
    try {
      expect(await Promise.all([whenReady(own, 5_000), whenReady(probe, 5_000)])).toEqual([
        true,
        true,
      ]);
      const counted = new RedisRateLimiter({ client: own, timeoutMs, logger: quietLogger });
      const policies = [bucket(1), daily(100)];
      // The first call on a connection loads the script (EVALSHA, then EVAL): not counted.
      await counted.consume(uniqueName('warm-up'), policies);
      const subject = uniqueName('key');
      // The commands one check runs, and whether it admitted the request.
      const check = async () => {
        const before = await commandCalls(probe);
        const { allowed } = await counted.consume(subject, policies);
        return { allowed, commands: commandsRun(before, await commandCalls(probe)) };
      };

      const admitted = await check();
      expect(admitted.allowed).toBe(true);
      expect(admitted.commands).toEqual({
        evalsha: 1,
        time: 1,
        hmget: 1,
        hset: 1,
        pexpireat: 1,
      });

      const stored = await probe.hgetall(counted.keyOf(subject));
      const changes = async () =>
        /rdb_changes_since_last_save:(\d+)/.exec(await probe.info('persistence'))![1];
      const changesBefore = await changes();
      const rejected = await check();
      expect(rejected.allowed).toBe(false);
      expect(rejected.commands).toEqual({
        evalsha: 1,
        time: 1,
        hmget: 1,
      });
      expect(await changes()).toBe(changesBefore);
      expect(await probe.hgetall(counted.keyOf(subject))).toEqual(stored);
    } finally {
      own.disconnect();
      probe.disconnect();
      await server.kill();
    }
  });
});

describe('RedisRateLimiter under concurrency', () => {
  it('admits exactly `burst` of 400 concurrent requests', async () => {
    const subject = uniqueName('key');
    const policies = [bucket(50), daily(1_000)];
    const results = await Promise.all(
      Array.from({ length: 400 }, () => limiter.consume(subject, policies)),
    );
    expect(results.filter((r) => r.allowed)).toHaveLength(50);
    expect(await admin.hget(limiter.keyOf(subject), limiter.fieldOf('daily', 'count'))).toBe('50');
    const remaining = results.filter((r) => r.allowed).map((r) => r.policies[0]!.remaining);
    expect(remaining.sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => i));
  });

  it('admits exactly `burst` across two clients (two instances)', async () => {
    const other = connectRedis(SHARED_REDIS_URL, patient);
    await new Promise((resolve) => other.once('ready', resolve));
    const second = new RedisRateLimiter({
      client: other,
      namespace,
      timeoutMs,
      logger: quietLogger,
    });
    const subject = uniqueName('key');
    const policies = [bucket(50), daily(1_000)];
    const results = await Promise.all(
      Array.from({ length: 400 }, (_, i) => (i % 2 ? second : limiter).consume(subject, policies)),
    );
    expect(results.filter((r) => r.allowed)).toHaveLength(50);
    expect(await admin.hget(limiter.keyOf(subject), limiter.fieldOf('daily', 'count'))).toBe('50');
    // Every answer came from Redis, none from the in-memory fallback.
    expect(quietLogger.warn).not.toHaveBeenCalled();
    other.disconnect();
  });
});

describe('RedisRateLimiter options', () => {
  it('rejects impossible options when constructed', () => {
    expect(() => new RedisRateLimiter({ client, onRedisError: 'ignore' as 'memory' })).toThrow(
      /onRedisError/,
    );
    expect(() => new RedisRateLimiter({ client, timeoutMs: 0 })).toThrow(/timeoutMs/);
  });

  it('answers without Redis when a key has no policies', async () => {
    expect(await limiter.consume(uniqueName('key'), [])).toEqual({ allowed: true, policies: [] });
  });
});

describe('RedisRateLimiter under a busy event loop', () => {
  it('does not take its own busy event loop for a stalled Redis', async () => {
    const logger = { warn: vi.fn(), info: vi.fn() };
    const busy = new RedisRateLimiter({ client, namespace, timeoutMs: 50, logger });
    const subject = uniqueName('busy');
    await busy.consume(subject, [bucket(10)]);

    const pending = busy.consume(subject, [bucket(10)]);
    // Hold the event loop well past the timeout while Redis's reply waits on the socket.
    const until = Date.now() + 300;
    while (Date.now() < until) {}
    const result = await pending;

    expect(logger.warn).not.toHaveBeenCalled();
    // Charged in Redis (9 left after the first, 8 now), not answered by a fresh in-memory bucket.
    expect(result.policies[0]!.remaining).toBe(8);
  });
});
