import { createKeygate, type RateLimitPolicy, type RateLimitResult } from '@keygate/core';
import { connectRedis, RateLimiterUnavailableError, RedisRateLimiter } from '@keygate/redis';
import { Redis, type RedisOptions } from 'ioredis';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createTestDatabase } from './support/postgres.js';
import { startAppProcess } from './support/processes.js';
import {
  freePort,
  GENEROUS_REDIS_TIMEOUT_MS,
  type RedisServer,
  startRedisServer,
  uniqueName,
  waitFor,
} from './support/redis.js';

const policies: RateLimitPolicy[] = [
  { name: 'burst', kind: 'token-bucket', capacity: 5, refillPerSecond: 1e-6 },
  { name: 'daily', kind: 'fixed-window', limit: 1_000, windowSeconds: 86_400 },
];

const cleanup: Array<() => unknown> = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

async function privateServer(port?: number): Promise<RedisServer> {
  const server = await startRedisServer({ port });
  cleanup.push(() => server.kill());
  return server;
}

function client(url: string, options: RedisOptions = {}): Redis {
  const redis = connectRedis(url, options);
  cleanup.push(() => redis.disconnect());
  return redis;
}

/** Runs `consume` and returns its result with how long it took. */
async function timed(
  limiter: RedisRateLimiter,
  subject: string,
): Promise<{ result: RateLimitResult; ms: number }> {
  const started = performance.now();
  const result = await limiter.consume(subject, policies);
  return { result, ms: performance.now() - started };
}

describe('RedisRateLimiter when Redis goes away', () => {
  it('falls back to in-memory limits without errors or waits, and returns to Redis when it is back', async () => {
    const server = await privateServer();
    // A long timeout: a request that waited on the dead server would take at least this long.
    const redis = client(server.url, { commandTimeout: GENEROUS_REDIS_TIMEOUT_MS });
    await waitFor('the client to connect', () => redis.status === 'ready');
    const logger = { warn: vi.fn(), info: vi.fn() };
    const limiter = new RedisRateLimiter({
      client: redis,
      logger,
      timeoutMs: GENEROUS_REDIS_TIMEOUT_MS,
    });
    const before = uniqueName('key');
    expect((await limiter.consume(before, policies)).allowed).toBe(true);

    await server.kill();

    // Straight after the kill, while the client notices, and well into the outage.
    const during = uniqueName('key');
    const outage: Array<{ result: RateLimitResult; ms: number }> = [];
    for (let i = 0; i < 20; i++) outage.push(await timed(limiter, during));
    outage.push(...(await Promise.all(Array.from({ length: 20 }, () => timed(limiter, during)))));
    expect(Math.max(...outage.map((o) => o.ms))).toBeLessThan(GENEROUS_REDIS_TIMEOUT_MS / 2);
    // The in-memory limiter enforces the same policy: 5 of the 40 requests get through.
    expect(outage.filter((o) => o.result.allowed)).toHaveLength(5);
    expect(outage.at(-1)!.result.retryAfterSeconds).toBe(1_000_000);
    expect(logger.warn).toHaveBeenCalledTimes(1);
    expect(logger.warn.mock.calls[0]![0]).toMatch(/in-memory limits/);

    const revived = await privateServer(server.port);
    const probe = new Redis(revived.url);
    cleanup.push(() => probe.disconnect());
    const after = uniqueName('key');
    await waitFor(
      'the limiter to write to the restarted Redis',
      async () => {
        await limiter.consume(after, policies);
        return (await probe.exists(limiter.keyOf(after))) === 1;
      },
      15_000,
    );
    expect(logger.info).toHaveBeenCalledTimes(1);
    expect(logger.info.mock.calls[0]![0]).toMatch(/recovered/);
    expect(logger.warn).toHaveBeenCalledTimes(1);
    // Shared counting again: a second instance on the same Redis sees this one's requests.
    const remaining = (await limiter.consume(after, policies)).policies[1]!.remaining;
    const otherClient = client(revived.url);
    await waitFor('the second client to connect', () => otherClient.status === 'ready');
    const other = new RedisRateLimiter({ client: otherClient, logger });
    const seen = await other.consume(after, policies);
    expect(seen.policies[1]!.remaining).toBe(remaining - 1);
  });

  it('answers from memory within the timeout while Redis hangs, then skips it until it recovers', async () => {
    const server = await privateServer();
    // Only the limiter's own timeout can end a wait: the client's would come far later.
    const redis = client(server.url, { commandTimeout: 60_000 });
    await waitFor('the client to connect', () => redis.status === 'ready');
    const logger = { warn: vi.fn(), info: vi.fn() };
    const timeoutMs = 2_000;
    const limiter = new RedisRateLimiter({
      client: redis,
      logger,
      recheckIntervalMs: 500,
      timeoutMs,
    });
    const subject = uniqueName('key');
    await limiter.consume(subject, policies);

    server.suspend();
    cleanup.push(() => server.resume());
    const stalled = await Promise.all(Array.from({ length: 10 }, () => timed(limiter, subject)));
    expect(Math.max(...stalled.map((s) => s.ms))).toBeLessThan(10_000);
    // Later requests skip the frozen server entirely: they do not wait the timeout again.
    const skipped = await timed(limiter, subject);
    expect(skipped.ms).toBeLessThan(timeoutMs);
    expect(logger.warn).toHaveBeenCalledTimes(1);

    server.resume();
    await waitFor(
      'Redis answers again',
      async () => {
        await limiter.consume(subject, policies);
        return logger.info.mock.calls.length === 1;
      },
      10_000,
    );
    const probe = new Redis(server.url);
    cleanup.push(() => probe.disconnect());
    expect(
      Number(await probe.hget(limiter.keyOf(subject), limiter.fieldOf('daily', 'count'))),
    ).toBeGreaterThan(1);
  });

  it('fails closed when asked to, quickly and with a typed error', async () => {
    const port = await freePort();
    const redis = client(`redis://127.0.0.1:${port}`);
    const logger = { warn: vi.fn(), info: vi.fn() };
    const limiter = new RedisRateLimiter({
      client: redis,
      onRedisError: 'fail-closed',
      logger,
      timeoutMs: GENEROUS_REDIS_TIMEOUT_MS,
    });
    for (let i = 0; i < 3; i++) {
      const started = performance.now();
      await expect(limiter.consume(uniqueName('key'), policies)).rejects.toBeInstanceOf(
        RateLimiterUnavailableError,
      );
      // Refused without waiting for the timeout.
      expect(performance.now() - started).toBeLessThan(GENEROUS_REDIS_TIMEOUT_MS / 2);
    }
    expect(logger.warn).toHaveBeenCalledTimes(1);
    expect(logger.warn.mock.calls[0]![0]).toMatch(/refusing/);
  });

  it('starts in memory when Redis is down from the start', async () => {
    const port = await freePort();
    const logger = { warn: vi.fn(), info: vi.fn() };
    const limiter = new RedisRateLimiter({ client: client(`redis://127.0.0.1:${port}`), logger });
    const subject = uniqueName('key');
    const results = await Promise.all(
      Array.from({ length: 8 }, () => limiter.consume(subject, policies)),
    );
    expect(results.filter((r) => r.allowed)).toHaveLength(5);
    expect(logger.warn).toHaveBeenCalledTimes(1);
  });
});

describe('the reference app', () => {
  it('waits KEYGATE_REDIS_TIMEOUT_MS for a stalled Redis, then serves from memory and says so', async () => {
    const [server, database] = await Promise.all([privateServer(), createTestDatabase()]);
    cleanup.push(() => database.close());
    const app = await startAppProcess('hono', {
      DATABASE_URL: database.url,
      REDIS_URL: server.url,
      KEYGATE_REDIS_TIMEOUT_MS: '1500',
    });
    cleanup.push(() => app.stop());
    const keygate = createKeygate({ store: database.store, limiter: false, cache: false });
    const { secret } = await keygate.keys.create({ name: 'reader', scopes: ['read:data'] });
    await keygate.close();
    const status = async () => {
      const response = await fetch(`${app.origin}/v1/query/websites`, {
        headers: { 'x-api-key': secret },
      });
      await response.arrayBuffer();
      return response.status;
    };
    expect(await status()).toBe(200);

    server.suspend();
    cleanup.push(() => server.resume());
    expect(await status()).toBe(200);
    await waitFor('the outage warning', () =>
      app
        .output()
        .includes(
          `Redis at 127.0.0.1:${server.port} unreachable (Redis did not answer within 1500 ms)`,
        ),
    );
  }, 120_000);
});
