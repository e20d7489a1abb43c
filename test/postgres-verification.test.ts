import {
  createKeyFormat,
  createKeygate,
  type Decision,
  type Keygate,
  type KeygateOptions,
  type KeygateRequest,
  MemoryAuditSink,
} from '@keygate/core';
import { connectPostgres, type KeyDatabase } from '@keygate/postgres';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, databaseProxy, type TestDatabase } from './support/postgres.js';

/** The verification cache in front of the real Postgres store (SPEC §7): hits cost no query. */

function request(key: string): KeygateRequest {
  return {
    method: 'GET',
    url: '/v1/query/websites',
    headers: new Headers({ 'x-api-key': key }),
    ip: '203.0.113.9',
  };
}

function codeOf(decision: Decision): string {
  return decision.ok ? 'OK' : decision.error.code;
}

const statements: string[] = [];
let database: TestDatabase;
const cleanups: Array<() => Promise<void>> = [];

beforeAll(async () => {
  database = await createTestDatabase({ logger: { logQuery: (query) => statements.push(query) } });
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});
afterAll(() => database.close());

function keygateOn(
  store: TestDatabase['store'] | KeyDatabase['store'],
  options: KeygateOptions = {},
) {
  const keygate: Keygate = createKeygate({
    store,
    auditSinks: [new MemoryAuditSink()],
    authFailureLimit: false,
    logger: { warn: () => {}, error: () => {} },
    ...options,
  });
  cleanups.push(() => keygate.close());
  return keygate;
}

describe('verification over Postgres', () => {
  it('looks a key up once, then serves it from the cache with no database round trip', async () => {
    const keygate = keygateOn(database.store);
    const { secret } = await keygate.keys.create({ name: 'hot', scopes: ['read:data'] });

    statements.length = 0;
    expect(codeOf(await keygate.authenticate(request(secret)))).toBe('OK');
    expect(statements).toHaveLength(1);
    expect(statements[0]).toMatch(/from "keygate_api_keys"/i);

    statements.length = 0;
    for (let i = 0; i < 50; i++)
      expect(codeOf(await keygate.authenticate(request(secret)))).toBe('OK');
    expect(statements).toEqual([]);
  });

  it('remembers unknown keys too, so repeated guesses cost one query', async () => {
    const keygate = keygateOn(database.store);
    const { secret } = await keygate.keys.create({ name: 'real', scopes: ['read:data'] });
    const neverIssued = createKeyFormat().generate('secret', 'live').secret;
    const typo = `${secret.slice(0, -7)}${secret.at(-7) === 'x' ? 'y' : 'x'}${secret.slice(-6)}`;

    statements.length = 0;
    for (let i = 0; i < 10; i++) {
      expect(codeOf(await keygate.authenticate(request(neverIssued)))).toBe('INVALID_API_KEY');
    }
    expect(statements).toHaveLength(1);

    // A typo fails its checksum before any query at all.
    statements.length = 0;
    expect(codeOf(await keygate.authenticate(request(typo)))).toBe('INVALID_API_KEY');
    expect(statements).toEqual([]);
  });

  it('refuses a cached key the moment it expires, and a revoked one at once', async () => {
    const keygate = keygateOn(database.store);
    const expiring = await keygate.keys.create({
      name: 'expiring',
      scopes: ['read:data'],
      expiresAt: new Date(Date.now() + 1_500).toISOString(),
    });
    const revoked = await keygate.keys.create({ name: 'revoked', scopes: ['read:data'] });
    expect(codeOf(await keygate.authenticate(request(expiring.secret)))).toBe('OK');
    expect(codeOf(await keygate.authenticate(request(revoked.secret)))).toBe('OK');

    await keygate.keys.revoke(revoked.key.id);
    expect(codeOf(await keygate.authenticate(request(revoked.secret)))).toBe('INVALID_API_KEY');

    // Well within the cache's 30 s TTL, but past the key's own expiry.
    while (Date.now() <= expiring.key.expiresAt!.getTime()) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(codeOf(await keygate.authenticate(request(expiring.secret)))).toBe('INVALID_API_KEY');
    await keygate.audit.flush();
    const reasons = (await keygate.auditReader!.query({ limit: 10 })).map((e) => e.reason);
    expect(reasons).toContain('expired');
    expect(reasons).toContain('revoked');
  });

  it('keeps serving cached keys when Postgres goes away, and answers 503 for the others', async () => {
    const proxy = await databaseProxy(database.url);
    cleanups.push(() => proxy.stop());
    const pg = await connectPostgres({ url: proxy.url, connectTimeoutSeconds: 2 });
    cleanups.push(() => pg.close());
    // A short fresh TTL, so the cached key is served from the stale-if-error window.
    const keygate = keygateOn(pg.store, { cache: { ttlMs: 50 } });
    const known = await keygate.keys.create({ name: 'known', scopes: ['read:data'] });
    const uncached = await keygate.keys.create({ name: 'uncached', scopes: ['read:data'] });
    expect(codeOf(await keygate.authenticate(request(known.secret)))).toBe('OK');

    await proxy.stop();
    await new Promise((resolve) => setTimeout(resolve, 100));

    expect(codeOf(await keygate.authenticate(request(known.secret)))).toBe('OK');
    const started = Date.now();
    const refused = await keygate.authenticate(request(uncached.secret));
    expect(codeOf(refused)).toBe('SERVICE_UNAVAILABLE');
    expect(refused.ok ? null : refused.error.status).toBe(503);
    expect(refused.headers['Retry-After']).toBe('1');
    // Bounded by the connect timeout, never a hang.
    expect(Date.now() - started).toBeLessThan(8_000);
  });
});
