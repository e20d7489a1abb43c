/**
 * The key store and the audit sink go silent (a hung database), refuse connections, and come
 * back, behind a real TCP proxy in front of the test database, on each reference app. What a
 * request waited on is counted as the store calls it made, never timed.
 */
import {
  type ApiKeyRecord,
  createKeygate,
  type Keygate,
  LocalInvalidationBus,
} from '@keygate/core';
import { PostgresKeyStore } from '@keygate/postgres';
import { drizzle } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { type Adapter, adapters, type RunningApp, startApp } from './conformance/harness.js';
import { type FaultProxy, faultProxy } from './support/fault-proxy.js';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';
import { waitFor } from './support/redis.js';

const ROUTE = '/v1/websites/w_1/analytics';
/** What the store's probe looks up: no request's digest. */
const PROBE_DIGEST = '0'.repeat(64);

let database: TestDatabase;
/** Issues keys straight into the database, not through the proxy. */
let issuer: Keygate;
beforeAll(async () => {
  database = await createTestDatabase();
  issuer = createKeygate({ store: database.store, auditSinks: [], logger: console });
});
afterAll(async () => {
  await issuer.close();
  await database.close();
});

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  vi.useRealTimers();
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Outage {
  proxy: FaultProxy;
  keygate: Keygate;
  bus: LocalInvalidationBus;
  app: RunningApp;
  /** Look-ups that reached the store on behalf of a request (the probe's are not counted). */
  lookups(): number;
  /** Calls that reached the audit sink's `write`. */
  sinkWrites(): number;
  warnings: string[];
  /** The user agent this app's requests are sent with, to find their audit events. */
  userAgent: string;
  get(secret: string): Promise<Response>;
}

/** A reference app on `adapter` whose key store and audit sink reach the database through a fault proxy. */
async function startOutageApp(
  adapter: Adapter,
  options: { maxHeldPerSink?: number } = {},
): Promise<Outage> {
  const proxy = await faultProxy(database.url);
  cleanups.push(() => proxy.close());
  const client = postgres(proxy.url, { max: 4, connect_timeout: 2, onnotice: () => {} });
  cleanups.push(() => client.end({ timeout: 1 }));
  // Shorter than the production default (6 s) to keep the test quick, long enough for a loaded machine.
  const store = new PostgresKeyStore(drizzle(client), { timeoutMs: 2_000, postgresJs: client });
  let lookups = 0;
  const findByDigest = store.findByDigest.bind(store);
  store.findByDigest = (digest: string): Promise<ApiKeyRecord | null> => {
    if (digest !== PROBE_DIGEST) lookups++;
    return findByDigest(digest);
  };
  let sinkWrites = 0;
  const write = store.auditSink.write.bind(store.auditSink);
  store.auditSink.write = (events) => {
    sinkWrites++;
    return write(events);
  };
  const warnings: string[] = [];
  const logger = {
    warn: (...args: unknown[]) => warnings.push(args.map(String).join(' ')),
    error: (...args: unknown[]) => warnings.push(args.map(String).join(' ')),
    info: (...args: unknown[]) => warnings.push(args.map(String).join(' ')),
  };
  const bus = new LocalInvalidationBus();
  const keygate = createKeygate({
    store,
    auditSinks: [store.auditSink],
    invalidation: bus,
    authFailureLimit: false,
    circuitBreaker: { retryMs: 50, maxRetryMs: 200 },
    auditQueue: { flushIntervalMs: 20, maxHeldPerSink: options.maxHeldPerSink },
    logger,
  });
  cleanups.push(() => keygate.close({ deadlineMs: 2_000 }));
  const app = await startApp(adapter, keygate);
  cleanups.push(() => app.close());
  const userAgent = `outage-${adapter.name}-${Math.random().toString(36).slice(2)}`;
  return {
    proxy,
    keygate,
    bus,
    app,
    lookups: () => lookups,
    sinkWrites: () => sinkWrites,
    warnings,
    userAgent,
    get: (secret) =>
      fetch(`${app.origin}${ROUTE}`, { headers: { 'x-api-key': secret, 'user-agent': userAgent } }),
  };
}

function reader(name: string) {
  return issuer.keys.create({ name, scopes: ['read:data'] });
}

/** Moves `Date.now()` on by `ms` (timers and sockets keep real time). */
function advanceClock(ms: number): void {
  vi.useFakeTimers({ toFake: ['Date'], shouldAdvanceTime: true });
  vi.setSystemTime(Date.now() + ms);
}

describe.each(adapters)('$name: a key store that goes silent', (adapter) => {
  it('waits on it once; then serves cached and stale keys, answers 503 to unknown ones at once, and recovers', async () => {
    const outage = await startOutageApp(adapter);
    const { keygate, proxy } = outage;
    const stale = await reader('stale');
    const cached = await reader('cached');
    const unknown = await reader('unknown');
    expect((await outage.get(stale.secret)).status).toBe(200);
    advanceClock(20_000);
    expect((await outage.get(cached.secret)).status).toBe(200);
    // `stale` was verified 31 s ago (past the 30 s TTL), `cached` 11 s ago.
    advanceClock(11_000);

    proxy.set('silent');
    const before = outage.lookups();
    // The first request after the store went silent waits for the call's timeout, once.
    const first = await outage.get(stale.secret);
    expect(first.status).toBe(200);
    expect(outage.lookups() - before).toBe(1);
    expect(keygate.storeAvailable).toBe(false);

    // After the first timeout, no request waits on the store.
    const requests = Array.from({ length: 10 }, () => [cached, stale, unknown]).flat();
    const answers = await Promise.all(requests.map((key) => outage.get(key.secret)));
    const bodies = await Promise.all(answers.map((answer) => answer.json()));
    for (const [i, answer] of answers.entries()) {
      const key = requests[i]!;
      if (key === unknown) {
        expect(answer.status).toBe(503);
        expect(bodies[i]).toMatchObject({ success: false, code: 'SERVICE_UNAVAILABLE' });
        expect(Number(answer.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      } else {
        expect(answer.status).toBe(200);
        expect(bodies[i]).toMatchObject({ success: true });
      }
    }
    expect(outage.lookups() - before).toBe(1);

    // A revocation heard on the invalidation bus applies to a stale entry too.
    await outage.bus.publish(stale.key.id);
    expect((await outage.get(stale.secret)).status).toBe(503);
    expect(outage.lookups() - before).toBe(1);
    const opened = outage.warnings.filter((line) => line.includes('key store unavailable'));
    expect(opened).toHaveLength(1);

    proxy.set('pass');
    await waitFor('the probe to find the store again', () => keygate.storeAvailable);
    expect((await outage.get(unknown.secret)).status).toBe(200);
    expect((await outage.get(stale.secret)).status).toBe(200);
    expect(outage.lookups() - before).toBe(3);
    expect(outage.warnings.some((line) => line.includes('key store answers again'))).toBe(true);
  });

  it('fails over at once when it refuses connections, and recovers', async () => {
    const outage = await startOutageApp(adapter);
    const { keygate, proxy } = outage;
    const known = await reader('known');
    const unknown = await reader('unknown');
    advanceClock(0);
    expect((await outage.get(known.secret)).status).toBe(200);
    advanceClock(31_000);

    proxy.set('refuse');
    const before = outage.lookups();
    expect((await outage.get(known.secret)).status).toBe(200);
    expect((await outage.get(unknown.secret)).status).toBe(503);
    expect((await outage.get(known.secret)).status).toBe(200);
    // Only the first request reached the store: it was refused, and opened the circuit.
    expect(outage.lookups() - before).toBe(1);

    proxy.set('pass');
    await waitFor('the probe to find the store again', () => keygate.storeAvailable);
    expect((await outage.get(unknown.secret)).status).toBe(200);
  });

  it('answers key management 503 with Retry-After at once while the store is down', async () => {
    const outage = await startOutageApp(adapter);
    const admin = await issuer.keys.create({ name: 'admin', scopes: ['manage:keys'] });
    outage.proxy.set('refuse');
    await outage.get(admin.secret); // served from the cache; nothing to wait for
    const listing = () =>
      fetch(`${outage.app.origin}/v1/api-keys`, { headers: { 'x-api-key': admin.secret } });
    const first = await listing(); // the store refuses: the circuit opens
    expect(first.status).toBe(503);
    const writesBefore = outage.lookups();
    const second = await listing();
    expect(second.status).toBe(503);
    expect(await second.json()).toMatchObject({ code: 'SERVICE_UNAVAILABLE' });
    expect(Number(second.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(outage.lookups()).toBe(writesBefore);
  });
});

describe.each(adapters)('$name: an audit sink that goes silent', (adapter) => {
  it('holds what requests record while it is down and writes all of it when it is back', async () => {
    const outage = await startOutageApp(adapter);
    const { keygate, proxy } = outage;
    const known = await reader('known');
    expect((await outage.get(known.secret)).status).toBe(200);
    const unknown = await reader('unknown');

    proxy.set('silent');
    // The first look-up times out and opens the store's circuit; its failure is audited.
    const statuses = [(await outage.get(unknown.secret)).status];
    for (let i = 0; i < 9; i++) statuses.push((await outage.get(unknown.secret)).status);
    for (let i = 0; i < 10; i++) statuses.push((await outage.get(known.secret)).status);
    expect(statuses.filter((status) => status === 503)).toHaveLength(10);
    expect(statuses.filter((status) => status === 200)).toHaveLength(10);
    await waitFor('the sink to be known down', () =>
      outage.warnings.some((line) => line.includes('audit sink PostgresAuditSink unavailable')),
    );
    await keygate.audit.flush();
    expect(keygate.audit.pending).toBeGreaterThan(0);

    proxy.set('pass');
    await waitFor('the held events and usage to be written', async () => {
      await keygate.audit.flush();
      return keygate.audit.pending === 0;
    });
    const [failures] = await database.sql<[{ count: number }]>`
      select count(*)::int as count from keygate_audit_events
      where action = 'auth.failed' and reason = 'store_unavailable'
        and user_agent = ${outage.userAgent}`;
    expect(failures!.count).toBe(10);
    const [served] = await database.sql<[{ count: number }]>`
      select coalesce(sum(authenticated), 0)::int as count from keygate_usage_counts
      where key_id = ${known.key.id}`;
    expect(served!.count).toBe(11);
    expect(keygate.audit.dropped).toBe(0);
  });

  it('past its bound, drops the oldest it holds, counted and logged once', async () => {
    const outage = await startOutageApp(adapter, { maxHeldPerSink: 5 });
    const { keygate, proxy } = outage;
    const unknown = await reader('unknown');
    proxy.set('refuse');
    for (let i = 0; i < 20; i++) {
      expect((await outage.get(unknown.secret)).status).toBe(503);
      await keygate.audit.flush();
    }
    expect(keygate.audit.dropped).toBe(15);
    const full = outage.warnings.filter((line) => line.includes('the most it holds'));
    expect(full).toHaveLength(1);

    proxy.set('pass');
    await waitFor('the held events to be written', async () => {
      await keygate.audit.flush();
      return keygate.audit.pending === 0;
    });
    expect(
      outage.warnings.some((line) => line.includes('15 events and usage rows were dropped')),
    ).toBe(true);
  });
});
