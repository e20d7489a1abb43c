import { createKeygate, type KeygateRequest } from '@keygate/core';
import { connectRedis, createRedisBackends } from '@keygate/redis';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  connectSharedRedis,
  deleteKeys,
  freePort,
  SHARED_REDIS_URL,
  uniqueName,
  waitFor,
} from './support/redis.js';

const namespace = uniqueName('keygate-test');
let admin: Redis;

beforeAll(async () => {
  admin = await connectSharedRedis();
});

afterAll(async () => {
  await deleteKeys(admin, `${namespace}:*`);
  admin.disconnect();
});

function request(secret: string): KeygateRequest {
  return {
    method: 'GET',
    url: '/v1/query/websites',
    headers: new Headers({ authorization: `Bearer ${secret}` }),
    ip: '203.0.113.50',
  };
}

describe('createRedisBackends', () => {
  it('wires the limiter into keygate: headers, 429 after the burst, counters in Redis', async () => {
    const logger = { warn: vi.fn(), info: vi.fn() };
    const redis = createRedisBackends({
      url: SHARED_REDIS_URL,
      namespace,
      logger,
      timeoutMs: 5_000,
    });
    // ioredis's own command timeout (2 s by default) would otherwise cut keygate's longer one short.
    expect(redis.client.options).toMatchObject({ commandTimeout: 5_000 });
    await waitFor('the client to connect', () => redis.client.status === 'ready');
    const keygate = createKeygate({
      limiter: redis.limiter,
      authFailureGuard: redis.failureGuard,
      invalidation: redis.invalidation,
      logger: { warn: logger.warn, error: logger.warn },
    });
    const { key, secret } = await keygate.keys.create({
      name: 'limited',
      scopes: ['read:data'],
      rateLimit: { burst: 2, perSecond: 0.001, daily: 100 },
    });

    const decisions = [];
    for (let i = 0; i < 3; i++) decisions.push(await keygate.authenticate(request(secret)));
    expect(decisions.map((d) => d.ok)).toEqual([true, true, false]);
    expect(decisions[0]!.headers).toMatchObject({
      'X-RateLimit-Limit': '2',
      'X-RateLimit-Remaining': '1',
      RateLimit: expect.stringContaining('"burst";r=1;t=1000'),
    });
    const rejected = decisions[2]!;
    expect(rejected.ok || rejected.error.code).toBe('RATE_LIMITED');
    expect(rejected.headers['Retry-After']).toBe('1000');
    expect(await admin.hget(`${namespace}:rl:{${key.id}}`, 'daily:count')).toBe('2');
    expect(logger.warn).not.toHaveBeenCalled();

    await keygate.close();
    await redis.close();
    await redis.close();
    expect(redis.client.status).toBe('end');
  });

  it('answers 503 through keygate when failing closed without Redis, and serves from memory otherwise', async () => {
    const url = `redis://127.0.0.1:${await freePort()}`;
    const logger = { warn: vi.fn(), info: vi.fn() };
    const closed = createRedisBackends({ url, onRedisError: 'fail-closed', logger });
    const open = createRedisBackends({ url, logger });
    const quiet = { warn: () => {}, error: () => {} };
    const strict = createKeygate({ limiter: closed.limiter, logger: quiet });
    const lenient = createKeygate({ limiter: open.limiter, logger: quiet });
    const strictKey = await strict.keys.create({ name: 'strict', scopes: ['read:data'] });
    const lenientKey = await lenient.keys.create({ name: 'lenient', scopes: ['read:data'] });

    const refused = await strict.authenticate(request(strictKey.secret));
    expect(refused.ok || [refused.error.code, refused.error.status]).toEqual([
      'SERVICE_UNAVAILABLE',
      503,
    ]);
    const served = await lenient.authenticate(request(lenientKey.secret));
    expect(served.ok).toBe(true);
    expect(served.headers['X-RateLimit-Remaining']).toBe('9999');

    for (const [keygate, backends] of [
      [strict, closed],
      [lenient, open],
    ] as const) {
      await keygate.close();
      await backends.close();
    }
  });

  it('closes at once while Redis is unreachable', async () => {
    const redis = createRedisBackends({
      url: `redis://127.0.0.1:${await freePort()}`,
      logger: { warn: () => {}, info: () => {} },
    });
    await waitFor('a failed connection attempt', () => redis.client.status === 'reconnecting');
    const started = performance.now();
    await redis.close();
    // Without waiting for a reconnect attempt (up to 2 s) or a QUIT that cannot be sent (1 s).
    expect(performance.now() - started).toBeLessThan(1_000);
    await new Promise((resolve) => setTimeout(resolve, 300));
    // No further reconnect attempt.
    expect(redis.client.status).not.toBe('connecting');
    expect(redis.client.status).not.toBe('ready');
  });

  it('leaves a client it was given open', async () => {
    const client = connectRedis(SHARED_REDIS_URL);
    await waitFor('the client to connect', () => client.status === 'ready');
    const redis = createRedisBackends({ client, namespace });
    expect(redis.client).toBe(client);
    await redis.close();
    expect(client.status).toBe('ready');
    client.disconnect();
  });

  it('needs a url, cluster nodes or a client', () => {
    expect(() => createRedisBackends({ url: '' })).toThrow(/url, clusterNodes or a client/);
  });

  it('refuses an impossible timeout before connecting, and keeps the 2 s backstop under a shorter one', async () => {
    expect(() => createRedisBackends({ url: SHARED_REDIS_URL, timeoutMs: 0 })).toThrow(
      'timeoutMs must be a positive number (got 0)',
    );
    const short = createRedisBackends({ url: SHARED_REDIS_URL, timeoutMs: 200 });
    expect(short.client.options).toMatchObject({ commandTimeout: 2_000 });
    const cluster = createRedisBackends({
      clusterNodes: `127.0.0.1:${await freePort()}`,
      timeoutMs: 8_000,
      logger: { warn: () => {}, info: () => {} },
    });
    expect(cluster.client.options).toMatchObject({ redisOptions: { commandTimeout: 8_000 } });
    await Promise.all([short.close(), cluster.close()]);
  });
});
