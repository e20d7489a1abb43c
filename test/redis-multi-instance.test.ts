import { createKeygate } from '@keygate/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';
import { type AppProcess, startAppProcess, stopAppProcesses } from './support/processes.js';
import { GENEROUS_REDIS_TIMEOUT_MS, type RedisServer, startRedisServer } from './support/redis.js';

/** SPEC §4: limits are exact across instances sharing Redis, and a rejected request costs nothing. */

let database: TestDatabase;
let redis: RedisServer;
let apps: AppProcess[] = [];

beforeAll(async () => {
  [database, redis] = await Promise.all([createTestDatabase(), startRedisServer()]);
  const env = {
    DATABASE_URL: database.url,
    REDIS_URL: redis.url,
    // A reply slowed past the default 500 ms by a loaded machine would be answered from memory.
    KEYGATE_REDIS_TIMEOUT_MS: String(GENEROUS_REDIS_TIMEOUT_MS),
  };
  apps = await Promise.all([startAppProcess('hono', env), startAppProcess('express', env)]);
}, 120_000);

afterAll(async () => {
  await stopAppProcesses();
  await redis?.kill();
  await database?.close();
});

/** The `r` (remaining) of one policy in an IETF `RateLimit` header. */
function remainingOf(header: string | null, policy: string): number {
  const match = new RegExp(`"${policy}";r=(\\d+)`).exec(header ?? '');
  if (!match) throw new Error(`no ${policy} policy in RateLimit: ${header}`);
  return Number(match[1]);
}

describe('two app processes on one Redis', () => {
  it('admit exactly the burst between them, and rejected requests do not count', async () => {
    const keygate = createKeygate({ store: database.store, limiter: false });
    const { secret } = await keygate.keys.create({
      name: 'burst of 100',
      scopes: ['read:data'],
      rateLimit: { burst: 100, perSecond: 0.001, daily: 1_000 },
    });
    await keygate.close();

    const responses = await Promise.all(
      Array.from({ length: 400 }, (_, i) =>
        fetch(`${apps[i % 2]!.origin}/v1/websites/w_1/analytics`, {
          headers: { 'x-api-key': secret },
        }),
      ),
    );
    const statuses = responses.map((r) => r.status);
    await Promise.all(responses.map((r) => r.arrayBuffer()));

    expect(
      statuses.filter((s) => s === 200),
      apps.map((a) => a.output()).join('\n'),
    ).toHaveLength(100);
    expect(statuses.filter((s) => s === 429)).toHaveLength(300);
    // Each process got 200 of the requests: with limits per process, 200 would have passed.
    expect(statuses.filter((s, i) => s === 429 && i % 2 === 0).length).toBeGreaterThan(0);
    expect(statuses.filter((s, i) => s === 429 && i % 2 === 1).length).toBeGreaterThan(0);

    // Another request is refused, and the daily window was charged for the 100 admitted only.
    const after = await fetch(`${apps[0]!.origin}/v1/websites/w_1/analytics`, {
      headers: { 'x-api-key': secret },
    });
    expect(after.status).toBe(429);
    expect(Number(after.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(remainingOf(after.headers.get('ratelimit'), 'daily')).toBe(900);
  }, 120_000);
});
