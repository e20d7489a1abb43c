/**
 * A revocation made while Redis is down, seen by a second instance: its invalidation bus is down,
 * so it trusts a cached key for `busDownTtlMs` (1 s) only and checks it with the store again.
 * The Redis here is a private `redis-server`, killed by PID; the keys live in a test database.
 */
import { type ApiKeyRecord, createKeygate, type Keygate, type KeygateRequest } from '@keygate/core';
import { PostgresKeyStore } from '@keygate/postgres';
import { createRedisBackends, type RedisBackends } from '@keygate/redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';
import { type RedisServer, startRedisServer, uniqueName, waitFor } from './support/redis.js';

let database: TestDatabase;
let redis: RedisServer;
const cleanups: Array<() => Promise<unknown>> = [];
beforeAll(async () => {
  database = await createTestDatabase();
  redis = await startRedisServer();
});
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  await redis.kill();
  await database.close();
});

interface Instance {
  keygate: Keygate;
  backends: RedisBackends;
  lines: string[];
  /** Look-ups of `digest` that reached the store. */
  lookups(): number;
}

function instance(namespace: string): Instance {
  const lines: string[] = [];
  const logger = {
    warn: (...args: unknown[]) => lines.push(args.map(String).join(' ')),
    error: (...args: unknown[]) => lines.push(args.map(String).join(' ')),
    info: (...args: unknown[]) => lines.push(args.map(String).join(' ')),
  };
  const store = new PostgresKeyStore(database.db);
  let lookups = 0;
  const findByDigest = store.findByDigest.bind(store);
  store.findByDigest = (digest: string): Promise<ApiKeyRecord | null> => {
    lookups++;
    return findByDigest(digest);
  };
  const backends = createRedisBackends({ url: redis.url, namespace, logger });
  const keygate = createKeygate({
    store,
    limiter: backends.limiter,
    authFailureGuard: backends.failureGuard,
    invalidation: backends.invalidation,
    logger,
  });
  cleanups.push(async () => {
    await keygate.close({ deadlineMs: 2_000 });
    await backends.close();
  });
  return { keygate, backends, lines, lookups: () => lookups };
}

function request(secret: string): KeygateRequest {
  return {
    method: 'GET',
    url: '/v1/data',
    headers: new Headers({ authorization: `Bearer ${secret}` }),
    ip: '203.0.113.7',
  };
}

async function outcome(keygate: Keygate, secret: string): Promise<string> {
  const decision = await keygate.authenticate(request(secret));
  return decision.ok ? 'OK' : decision.error.code;
}

describe('a revocation made while Redis is down', () => {
  it('reaches an instance whose invalidation bus is down within busDownTtlMs, each side logging once', async () => {
    const namespace = uniqueName('bus-down');
    const a = instance(namespace);
    const b = instance(namespace);
    const warmup = await a.keygate.keys.create({ name: 'warm-up', scopes: ['read:data'] });
    const kept = await a.keygate.keys.create({ name: 'kept', scopes: ['read:data'] });
    const revoked = await a.keygate.keys.create({ name: 'revoked', scopes: ['read:data'] });
    // With Redis up, a revocation on A reaches B through the bus.
    expect(await outcome(b.keygate, warmup.secret)).toBe('OK');
    await a.keygate.keys.revoke(warmup.key.id);
    await waitFor('B to hear of the revocation', async () => {
      return (await outcome(b.keygate, warmup.secret)) === 'INVALID_API_KEY';
    });
    expect(await outcome(b.keygate, kept.secret)).toBe('OK');
    expect(await outcome(b.keygate, revoked.secret)).toBe('OK');

    await redis.kill();
    const busDown = (lines: string[]) =>
      lines.filter((line) => line.includes('cache invalidation bus down'));
    await waitFor('B to notice its bus is down', () => busDown(b.lines).length > 0);

    await a.keygate.keys.revoke(revoked.key.id);
    expect(a.lines.some((line) => line.includes('could not publish the invalidation'))).toBe(true);
    expect(a.lines.some((line) => line.includes('other instances may serve it'))).toBe(true);

    // B's cache entry is older than busDownTtlMs once this much has passed: it asks the store.
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const before = b.lookups();
    expect(await outcome(b.keygate, revoked.secret)).toBe('INVALID_API_KEY');
    expect(await outcome(b.keygate, kept.secret)).toBe('OK');
    expect(b.lookups() - before).toBe(2);
    expect(busDown(b.lines)).toHaveLength(1);
    expect(busDown(a.lines)).toHaveLength(1);
    expect(b.lines.filter((line) => line.includes('subscription lost'))).toHaveLength(0);

    // Redis back: the bus resubscribes, drops what was cached, and cached keys are trusted again.
    redis = await startRedisServer({ port: redis.port });
    await waitFor(
      'B to subscribe again',
      () => b.lines.some((line) => line.includes('subscription restored')),
      20_000,
    );
    expect(await outcome(b.keygate, kept.secret)).toBe('OK');
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const trusted = b.lookups();
    expect(await outcome(b.keygate, kept.secret)).toBe('OK');
    expect(b.lookups()).toBe(trusted);
  });
});
