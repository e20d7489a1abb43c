import { createKeygate } from '@keygate/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';
import { type AppProcess, startAppProcess, stopAppProcesses } from './support/processes.js';
import { type RedisServer, startRedisServer } from './support/redis.js';

/**
 * SPEC §4, leased mode: three reference-app processes (Hono, Express, Koa) with
 * `KEYGATE_LIMITS=leased` on one Redis admit no more than a key's limit between them, and nearly
 * all of it. Redis is private to this file, so no other suite's invalidations reach the apps.
 */

let database: TestDatabase;
let redis: RedisServer;
let apps: AppProcess[] = [];

beforeAll(async () => {
  [database, redis] = await Promise.all([createTestDatabase(), startRedisServer()]);
  const env = { DATABASE_URL: database.url, REDIS_URL: redis.url, KEYGATE_LIMITS: 'leased' };
  apps = await Promise.all([
    startAppProcess('hono', env),
    startAppProcess('express', env),
    startAppProcess('koa', env),
  ]);
}, 120_000);

afterAll(async () => {
  await stopAppProcesses();
  await redis?.kill();
  await database?.close();
});

const BURST = 200;

/** A new key with these limits; 3 × BURST concurrent requests spread over the three apps. */
async function burstOverApps(rateLimit: { burst: number; perSecond: number; daily: number }) {
  const keygate = createKeygate({ store: database.store, limiter: false });
  const { secret } = await keygate.keys.create({
    name: 'leased',
    scopes: ['read:data'],
    rateLimit,
  });
  await keygate.close();
  const responses = await Promise.all(
    Array.from({ length: 3 * BURST }, (_, i) =>
      fetch(`${apps[i % 3]!.origin}/v1/websites/w_1/analytics`, {
        headers: { 'x-api-key': secret },
      }),
    ),
  );
  await Promise.all(responses.map((r) => r.arrayBuffer()));
  const statuses = responses.map((r) => r.status);
  const unexpected = statuses.filter((s) => s !== 200 && s !== 429);
  expect(unexpected, apps.map((a) => a.output()).join('\n')).toEqual([]);
  const refused = responses.filter((r) => r.status === 429);
  for (const response of refused) {
    expect(Number(response.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(response.headers.get('x-ratelimit-remaining')).toBe('0');
  }
  return statuses.filter((s) => s === 200).length;
}

describe('three app processes with leased limits on one Redis', () => {
  it('announce leased limits', () => {
    for (const app of apps) expect(app.output()).toContain('leased limits in Redis');
  });

  it('admit at most the burst of 3 × burst concurrent requests, and at least 95% of it (5 runs)', async () => {
    const runs: number[] = [];
    for (let run = 0; run < 5; run++) {
      runs.push(await burstOverApps({ burst: BURST, perSecond: 0.001, daily: 100_000 }));
    }
    console.info(
      `leased, 3 app processes, burst ${BURST}, ${3 * BURST} requests: admitted per run`,
      runs,
    );
    for (const admitted of runs) {
      expect(admitted).toBeLessThanOrEqual(BURST);
      expect(admitted).toBeGreaterThanOrEqual(0.95 * BURST);
    }
  });

  it('admit at most the daily limit when it binds, and at least 95% of it (5 runs)', async () => {
    const runs: number[] = [];
    for (let run = 0; run < 5; run++) {
      runs.push(await burstOverApps({ burst: 10_000, perSecond: 1_000, daily: BURST }));
    }
    console.info(
      `leased, 3 app processes, daily ${BURST}, ${3 * BURST} requests: admitted per run`,
      runs,
    );
    for (const admitted of runs) {
      expect(admitted).toBeLessThanOrEqual(BURST);
      expect(admitted).toBeGreaterThanOrEqual(0.95 * BURST);
    }
  });
});
