import { connectRedis, RedisAuthFailureGuard } from '@keygate/redis';
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
// Generous timeouts: these tests check the counting in Redis, not the fallback, on a possibly busy machine.
const patient = { commandTimeout: 5_000 };
const timeoutMs = 5_000;
let admin: Redis;
let client: Redis;

beforeAll(async () => {
  admin = await connectSharedRedis();
  client = connectRedis(SHARED_REDIS_URL, patient);
  await waitFor('the client to connect', () => client.status === 'ready');
});

afterAll(async () => {
  await deleteKeys(admin, `${namespace}:*`);
  client.disconnect();
  admin.disconnect();
});

describe('RedisAuthFailureGuard', () => {
  it('blocks an IP after its allowed failures and leaves other IPs alone', async () => {
    const guard = new RedisAuthFailureGuard({
      client,
      namespace,
      timeoutMs,
      points: 3,
      durationSeconds: 60,
      blockSeconds: 300,
    });
    const attacker = '203.0.113.7';
    const results: number[] = [];
    for (let i = 0; i < 5; i++) results.push(await guard.recordFailure(attacker));
    expect(results.slice(0, 3)).toEqual([0, 0, 0]);
    for (const blocked of results.slice(3)) {
      expect(blocked).toBeGreaterThan(290);
      expect(blocked).toBeLessThanOrEqual(300);
    }
    expect(await guard.recordFailure('198.51.100.1')).toBe(0);
    expect(await admin.exists(`${namespace}:auth-fail:${attacker}`)).toBe(1);
  });

  it('counts across instances sharing Redis', async () => {
    const other = connectRedis(SHARED_REDIS_URL, patient);
    await waitFor('the second client to connect', () => other.status === 'ready');
    const options = { namespace, timeoutMs, points: 2, durationSeconds: 60, blockSeconds: 120 };
    const first = new RedisAuthFailureGuard({ client, ...options });
    const second = new RedisAuthFailureGuard({ client: other, ...options });
    const ip = '2001:db8::42';
    expect(await first.recordFailure(ip)).toBe(0);
    expect(await second.recordFailure(ip)).toBe(0);
    expect(await first.recordFailure(ip)).toBeGreaterThan(110);
    other.disconnect();
  });

  it('keeps counting in memory while Redis is unreachable', async () => {
    const down = connectRedis(`redis://127.0.0.1:${await freePort()}`);
    const logger = { warn: vi.fn(), info: vi.fn() };
    const guard = new RedisAuthFailureGuard({ client: down, namespace, points: 2, logger });
    const started = performance.now();
    const results = [];
    for (let i = 0; i < 3; i++) results.push(await guard.recordFailure('192.0.2.9'));
    expect(results.slice(0, 2)).toEqual([0, 0]);
    expect(results[2]).toBe(300);
    expect(performance.now() - started).toBeLessThan(100);
    expect(logger.warn).toHaveBeenCalledTimes(1);
    expect(logger.warn.mock.calls[0]![0]).toMatch(/counting failed authentications .* in memory/);
    down.disconnect();
  });

  it('rejects impossible limits when constructed', () => {
    expect(() => new RedisAuthFailureGuard({ client, points: 0 })).toThrow(/points/);
  });
});
