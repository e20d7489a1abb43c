/**
 * Leased limits when Redis fails: the same fallback as exact mode (in-memory limits or fail
 * closed, one warning), leased tokens still spent, and a lease call whose reply was lost settled
 * without losing or making up a token. Also on a Redis Cluster (one slot per key). Each test runs
 * its own redis-server, stopped by PID.
 */
import type { RateLimitPolicy, RateLimitResult } from '@keygate/core';
import {
  connectRedis,
  connectRedisCluster,
  LeasedRedisRateLimiter,
  RateLimiterUnavailableError,
} from '@keygate/redis';
import { Redis, type RedisOptions } from 'ioredis';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  freePort,
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

async function privateServer(
  options: { port?: number; args?: string[] } = {},
): Promise<RedisServer> {
  const server = await startRedisServer(options);
  cleanup.push(() => server.kill());
  return server;
}

function client(url: string, options: RedisOptions = {}): Redis {
  const redis = connectRedis(url, options);
  cleanup.push(() => redis.disconnect());
  return redis;
}

/** A plain connection (it queues commands until connected), to look at what Redis holds. */
function plain(url: string): Redis {
  const redis = new Redis(url);
  cleanup.push(() => redis.disconnect());
  return redis;
}

function leased(
  options: ConstructorParameters<typeof LeasedRedisRateLimiter>[0],
): LeasedRedisRateLimiter {
  const limiter = new LeasedRedisRateLimiter(options);
  cleanup.push(() => limiter.close());
  return limiter;
}

async function timed(
  limiter: LeasedRedisRateLimiter,
  subject: string,
  using = policies,
): Promise<{ result: RateLimitResult; ms: number }> {
  const started = performance.now();
  const result = await limiter.consume(subject, using);
  return { result, ms: performance.now() - started };
}

describe('LeasedRedisRateLimiter when Redis goes away', () => {
  it('falls back to in-memory limits as exact mode does, and shares limits again when Redis is back', async () => {
    const server = await privateServer();
    const redis = client(server.url);
    await waitFor('the client to connect', () => redis.status === 'ready');
    const logger = { warn: vi.fn(), info: vi.fn() };
    const limiter = leased({ client: redis, logger });
    expect((await limiter.consume(uniqueName('key'), policies)).allowed).toBe(true);

    await server.kill();

    const during = uniqueName('key');
    const outage: Array<{ result: RateLimitResult; ms: number }> = [];
    for (let i = 0; i < 20; i++) outage.push(await timed(limiter, during));
    outage.push(...(await Promise.all(Array.from({ length: 20 }, () => timed(limiter, during)))));
    expect(Math.max(...outage.map((o) => o.ms))).toBeLessThan(200);
    // The in-memory limiter enforces the same policy: 5 of the 40 requests get through.
    expect(outage.filter((o) => o.result.allowed)).toHaveLength(5);
    expect(outage.at(-1)!.result.retryAfterSeconds).toBe(1_000_000);
    expect(logger.warn).toHaveBeenCalledTimes(1);
    expect(logger.warn.mock.calls[0]![0]).toMatch(/in-memory limits/);

    const revived = await privateServer({ port: server.port });
    const probe = plain(revived.url);
    const after = uniqueName('key');
    await waitFor(
      'the limiter to lease from the restarted Redis',
      async () => {
        await limiter.consume(after, policies);
        return (await probe.exists(limiter.leaseKeyOf(after))) === 1;
      },
      15_000,
    );
    expect(logger.info).toHaveBeenCalledTimes(1);
    expect(logger.info.mock.calls[0]![0]).toMatch(/recovered/);
  });

  it('keeps spending what Redis leased it while Redis hangs, then answers from memory within the timeout', async () => {
    const server = await privateServer();
    const redis = client(server.url, { commandTimeout: 100 });
    await waitFor('the client to connect', () => redis.status === 'ready');
    const logger = { warn: vi.fn(), info: vi.fn() };
    const limiter = leased({ client: redis, logger, timeoutMs: 100, recheckIntervalMs: 500 });
    const roomy: RateLimitPolicy[] = [
      { name: 'burst', kind: 'token-bucket', capacity: 10_000, refillPerSecond: 1e-6 },
      { name: 'daily', kind: 'fixed-window', limit: 100_000, windowSeconds: 86_400 },
    ];
    const subject = uniqueName('key');
    // The first lease is one token; the second is sized to how fast the first went.
    await limiter.consume(subject, roomy);
    await limiter.consume(subject, roomy);

    server.suspend();
    cleanup.push(() => server.resume());
    const leasedAnswers = await Promise.all(
      Array.from({ length: 50 }, () => timed(limiter, subject, roomy)),
    );
    expect(leasedAnswers.every((a) => a.result.allowed)).toBe(true);
    expect(logger.warn).not.toHaveBeenCalled();

    // Another key needs Redis: memory answers, within the timeout.
    const other = uniqueName('key');
    const stalled = await Promise.all(Array.from({ length: 10 }, () => timed(limiter, other)));
    expect(Math.max(...stalled.map((s) => s.ms))).toBeLessThan(300);
    expect(stalled.filter((s) => s.result.allowed)).toHaveLength(5);
    expect(logger.warn).toHaveBeenCalledTimes(1);
  });

  it('fails closed when asked to, quickly and with a typed error', async () => {
    const port = await freePort();
    const redis = client(`redis://127.0.0.1:${port}`);
    const logger = { warn: vi.fn(), info: vi.fn() };
    const limiter = leased({ client: redis, onRedisError: 'fail-closed', logger });
    for (let i = 0; i < 3; i++) {
      const started = performance.now();
      await expect(limiter.consume(uniqueName('key'), policies)).rejects.toBeInstanceOf(
        RateLimiterUnavailableError,
      );
      expect(performance.now() - started).toBeLessThan(50);
    }
    expect(logger.warn).toHaveBeenCalledTimes(1);
    expect(logger.warn.mock.calls[0]![0]).toMatch(/refusing/);
  });

  it('settles a lease whose reply never came: no token lost, none made up', async () => {
    const server = await privateServer();
    const redis = client(server.url);
    await waitFor('the client to connect', () => redis.status === 'ready');
    const probe = plain(server.url);
    const logger = { warn: vi.fn(), info: vi.fn() };
    const limiter = leased({
      client: redis,
      logger,
      onRedisError: 'fail-closed',
      timeoutMs: 150,
      recheckIntervalMs: 200,
      maxLeaseShare: 0.5,
    });
    const fifty: RateLimitPolicy[] = [
      { name: 'burst', kind: 'token-bucket', capacity: 50, refillPerSecond: 1e-6 },
      { name: 'daily', kind: 'fixed-window', limit: 1_000, windowSeconds: 86_400 },
    ];
    const subject = uniqueName('key');
    let admitted = 0;
    const consume = async () => {
      const result = await limiter.consume(subject, fifty);
      if (result.allowed) admitted++;
      return result;
    };
    // A lease of one token, then one of half of what is left (24): spend it all.
    while (admitted < 25) await consume();
    expect(await probe.hget(limiter.keyOf(subject), limiter.fieldOf('daily', 'count'))).toBe('25');

    // The next lease is asked of a frozen Redis: it runs the call once thawed, but the reply
    // comes after the limiter gave up on it.
    server.suspend();
    await expect(consume()).rejects.toBeInstanceOf(RateLimiterUnavailableError);
    server.resume();
    await waitFor(
      'the granted lease nobody received',
      async () =>
        Number(await probe.hget(limiter.keyOf(subject), limiter.fieldOf('daily', 'count'))) > 25,
    );

    await waitFor(
      'Redis to answer the limiter again',
      async () => {
        try {
          await consume();
          return true;
        } catch {
          return false;
        }
      },
      10_000,
    );
    while ((await consume()).allowed);
    await limiter.close();
    // Every token was admitted once: the lease lost in flight came back whole.
    expect(admitted).toBe(50);
    expect(await probe.hget(limiter.keyOf(subject), limiter.fieldOf('daily', 'count'))).toBe('50');
    expect(await probe.hlen(limiter.leaseKeyOf(subject))).toBe(0);
  });
});

describe('LeasedRedisRateLimiter on a Redis Cluster', () => {
  it('leases with one script call in one slot per key', async () => {
    const server = await privateServer({
      args: ['--cluster-enabled', 'yes', '--cluster-announce-ip', '127.0.0.1'],
    });
    const node = plain(server.url);
    await node.call('CLUSTER', 'ADDSLOTSRANGE', '0', '16383');
    await waitFor('the cluster to be ready', async () =>
      String(await node.call('CLUSTER', 'INFO')).includes('cluster_state:ok'),
    );
    const cluster = connectRedisCluster([{ host: '127.0.0.1', port: server.port }], {
      redisOptions: { commandTimeout: 5_000 },
    });
    cleanup.push(() => cluster.disconnect());
    await waitFor('the cluster client', () => cluster.status === 'ready');
    const logger = { warn: vi.fn(), info: vi.fn() };
    const limiter = leased({ client: cluster, timeoutMs: 5_000, logger });
    const hundred: RateLimitPolicy[] = [
      { name: 'burst', kind: 'token-bucket', capacity: 100, refillPerSecond: 1e-6 },
      { name: 'daily', kind: 'fixed-window', limit: 1_000, windowSeconds: 86_400 },
    ];
    for (const subject of [uniqueName('key'), 'key{with}braces']) {
      const results = await Promise.all(
        Array.from({ length: 150 }, () => limiter.consume(subject, hundred)),
      );
      expect(results.filter((r) => r.allowed)).toHaveLength(100);
      const slots = await Promise.all(
        [limiter.leaseKeyOf(subject), limiter.keyOf(subject)].map((key) =>
          node.call('CLUSTER', 'KEYSLOT', key),
        ),
      );
      expect(new Set(slots).size).toBe(1);
    }
    expect(logger.warn).not.toHaveBeenCalled();
  });
});
