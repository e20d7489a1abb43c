import {
  type AuditEvent,
  type AuditSink,
  createKeygate,
  JsonLinesAuditSink,
  type Keygate,
  type KeygateOptions,
  type UsageBatch,
} from '@keygate/core';
import { connectPostgres, type KeyDatabase } from '@keygate/postgres';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { adapters, type RunningApp, startApp } from './conformance/harness.js';
import { loadFromWorker, type SentRequest } from './support/http.js';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';

const REQUESTS = 10_000;
/** A few seconds on an idle machine; generous for a CI runner shared with other suites. */
const TIMEOUT_MS = 120_000;
const hono = adapters.find((a) => a.name === 'hono')!;
/** Limits that a load test never reaches: it counts requests, it does not limit them. */
const UNLIMITED: KeygateOptions = {
  authFailureLimit: false,
  tiers: { secret: { perSecond: 1_000_000, burst: 1_000_000, daily: 1_000_000_000 } },
};

/** One kind of request in the mix, and what the app must answer and record for it. */
interface Kind {
  name: string;
  request: (secrets: Secrets) => Omit<SentRequest, 'headers'> & { headers: Record<string, string> };
  status: number;
  /** Authenticated (counted as served), or refused with this reason (one event). */
  auth: 'counted' | { reason: string };
  /** The guard's check after authentication: passed (counted) or failed with this reason (one event). */
  check: 'none' | 'counted' | { action: 'scope.checked' | 'resource.checked'; reason: string };
}

interface Secrets {
  reader: string;
  writer: string;
  unknown: string;
}

const KINDS: Kind[] = [
  {
    name: 'valid key',
    request: (s) => ({ path: '/v1/websites/w_1/analytics', headers: { 'x-api-key': s.reader } }),
    status: 200,
    auth: 'counted',
    check: 'counted',
  },
  {
    name: 'unknown key',
    request: (s) => ({ path: '/v1/query/websites', headers: { 'x-api-key': s.unknown } }),
    status: 401,
    auth: { reason: 'unknown' },
    check: 'none',
  },
  {
    name: 'malformed key',
    request: () => ({
      path: '/v1/query/websites',
      headers: { authorization: 'Bearer sk_live_not-a-key' },
    }),
    status: 401,
    auth: { reason: 'malformed' },
    check: 'none',
  },
  {
    name: 'no key',
    request: () => ({ path: '/v1/query/websites', headers: {} }),
    status: 401,
    auth: { reason: 'missing' },
    check: 'none',
  },
  {
    name: 'missing scope',
    request: (s) => ({ path: '/v1/query/websites', headers: { 'x-api-key': s.writer } }),
    status: 403,
    auth: 'counted',
    check: { action: 'scope.checked', reason: 'insufficient_scope' },
  },
  {
    name: 'wrong website',
    request: (s) => ({ path: '/v1/websites/w_2/analytics', headers: { 'x-api-key': s.reader } }),
    status: 403,
    auth: 'counted',
    check: { action: 'resource.checked', reason: 'resource_not_granted' },
  },
];

/** A sink that wants every event, as a log pipeline does: JSON lines, kept in memory. */
function jsonLines(): { sink: JsonLinesAuditSink; events: () => AuditEvent[] } {
  let text = '';
  const sink = new JsonLinesAuditSink((lines) => {
    text += lines;
  });
  return {
    sink,
    events: () =>
      text
        .trimEnd()
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as AuditEvent),
  };
}

/** Sums of the counts of `keygate_usage_counts`. */
async function counted(database: TestDatabase): Promise<Record<string, number>> {
  const [sums] = await database.sql<Array<Record<string, number>>>`
    select coalesce(sum(authenticated), 0)::int as authenticated,
      coalesce(sum(scope_checks), 0)::int as "scopeChecks",
      coalesce(sum(resource_checks), 0)::int as "resourceChecks"
    from keygate_usage_counts`;
  return sums!;
}

describe('audit trail under load (Hono reference app, Postgres sink and JSON lines)', () => {
  let database: TestDatabase;
  let keygate: Keygate;
  let app: RunningApp;
  let secrets: Secrets;
  const lines = jsonLines();

  beforeAll(async () => {
    database = await createTestDatabase();
    keygate = createKeygate({
      ...UNLIMITED,
      store: database.store,
      auditSinks: [database.auditSink, lines.sink],
    });
    const reader = await keygate.keys.create({
      name: 'reader',
      scopes: ['read:data'],
      resources: ['website:w_1'],
    });
    const writer = await keygate.keys.create({ name: 'writer', scopes: ['write:llm'] });
    // Well formed, checksum and all, but issued by another instance: this store does not know it.
    const elsewhere = await createKeygate().keys.create({
      name: 'stranger',
      scopes: ['read:data'],
    });
    secrets = { reader: reader.secret, writer: writer.secret, unknown: elsewhere.secret };
    app = await startApp(hono, keygate);
  });

  afterAll(async () => {
    // The test shuts the app down itself; this is for when it failed before.
    await app?.close().catch(() => {});
    await keygate?.close();
    await database?.close();
  });

  it(
    'counts every success and keeps every failure after a graceful shutdown; JSON lines gets every event',
    async () => {
      const requests = Array.from({ length: REQUESTS }, (_, i) => {
        const kind = KINDS[i % KINDS.length]!;
        const request = kind.request(secrets);
        return {
          kind,
          id: `load-${i}`,
          sent: { ...request, headers: { ...request.headers, 'x-request-id': `load-${i}` } },
        };
      });

      const statuses = await loadFromWorker(
        app.origin,
        requests.map((r) => r.sent),
        50,
      );
      for (const [i, status] of statuses.entries()) {
        expect(status, `${requests[i]!.kind.name} (${requests[i]!.id})`).toBe(
          requests[i]!.kind.status,
        );
      }

      // A graceful shutdown: stop taking requests, then flush the audit trail and the counts.
      await app.close();
      await keygate.close();

      const expected = { served: 0, passed: 0 };
      for (const { kind } of requests) {
        if (kind.auth === 'counted') expected.served++;
        if (kind.check === 'counted') expected.passed++;
      }
      expect(await counted(database)).toEqual({
        authenticated: expected.served,
        scopeChecks: 0,
        resourceChecks: expected.passed,
      });

      // Failures and denials: one event each, with the request's id and reason; no success events.
      const stored = await database.sql<
        Array<{ request_id: string; action: string; reason: string | null; n: number }>
      >`select request_id, min(action) as action, min(reason) as reason, count(*)::int as n
        from keygate_audit_events
        where action <> 'key.created'
        group by request_id`;
      const byRequest = new Map(stored.map((row) => [row.request_id, row]));
      const refused = requests.filter(
        (r) => r.kind.auth !== 'counted' || (r.kind.check !== 'none' && r.kind.check !== 'counted'),
      );
      expect(byRequest.size).toBe(refused.length);
      for (const { id, kind } of refused) {
        const failure =
          kind.auth !== 'counted'
            ? { action: 'auth.failed', reason: kind.auth.reason }
            : (kind.check as { action: string; reason: string });
        expect({ id, ...byRequest.get(id) }).toEqual({ id, request_id: id, n: 1, ...failure });
      }

      // The sink that wants every event got every one: an authentication event per request.
      const everyEvent = lines.events().filter((e) => e.action.startsWith('auth.'));
      expect(everyEvent).toHaveLength(REQUESTS);
      const outcomes = new Map(everyEvent.map((e) => [e.requestId, e]));
      for (const { id, kind } of requests) {
        expect({ id, action: outcomes.get(id)?.action }).toEqual({
          id,
          action: kind.auth === 'counted' ? 'auth.succeeded' : 'auth.failed',
        });
      }
      expect(keygate.audit.dropped).toBe(0);
    },
    TIMEOUT_MS,
  );
});

/** The Postgres sink, counting the usage rows each flush sends (each one row inserted or updated). */
function countingSink(sink: AuditSink): AuditSink & { rowsSent: number; batches: number } {
  const counting = {
    rowsSent: 0,
    batches: 0,
    write: (events: readonly AuditEvent[]) => sink.write(events),
    writeUsage: async (batch: UsageBatch) => {
      await sink.writeUsage!(batch);
      counting.rowsSent += batch.rows.length;
      counting.batches++;
    },
  };
  return counting;
}

describe('usage rows under load', () => {
  const opened: Array<{ close(): Promise<unknown> }> = [];
  afterEach(async () => {
    for (const resource of opened.splice(0).reverse()) await resource.close().catch(() => {});
  });

  it(
    `${REQUESTS.toLocaleString('en')} requests from one key, client and path: one or two rows (a minute boundary), counts exact`,
    async () => {
      const database = await createTestDatabase();
      opened.push(database);
      const sink = countingSink(database.auditSink);
      const keygate = createKeygate({ ...UNLIMITED, store: database.store, auditSinks: [sink] });
      opened.push(keygate);
      const { secret, key } = await keygate.keys.create({ name: 'busy', scopes: ['read:data'] });
      const app = await startApp(hono, keygate);
      opened.push(app);
      const request = { path: '/v1/query/websites', headers: { 'x-api-key': secret } };
      const statuses = await loadFromWorker(app.origin, new Array(REQUESTS).fill(request), 50);
      expect(statuses.every((status) => status === 200)).toBe(true);
      await app.close();
      await keygate.close();

      const rows = await database.sql<
        Array<{ authenticated: number; scope_checks: number; minute: Date }>
      >`select authenticated, scope_checks, minute from keygate_usage_counts
        where key_id = ${key.id} order by minute`;
      // The load may straddle a minute on a slow machine: one row per minute it covers.
      const minutes = new Set(rows.map((row) => row.minute.getTime())).size;
      expect(rows.length).toBeGreaterThanOrEqual(1);
      expect(rows.length).toBeLessThanOrEqual(2);
      expect(rows).toHaveLength(minutes);
      expect(rows.reduce((sum, row) => sum + row.authenticated, 0)).toBe(REQUESTS);
      expect(rows.reduce((sum, row) => sum + row.scope_checks, 0)).toBe(REQUESTS);
      const [events] = await database.sql<Array<{ n: number }>>`
        select count(*)::int as n from keygate_audit_events where action <> 'key.created'`;
      expect(events!.n).toBe(0);

      // Rows written (inserted or added to) per successful request: a few per flush, not one per request.
      expect(sink.batches).toBeGreaterThanOrEqual(1);
      expect(sink.rowsSent / REQUESTS).toBeLessThanOrEqual(0.01);
    },
    TIMEOUT_MS,
  );

  it(
    'two app instances on one database: their counts add up exactly, after both shut down',
    async () => {
      const database = await createTestDatabase();
      opened.push(database);
      const instances: Array<{ db: KeyDatabase; keygate: Keygate; app: RunningApp }> = [];
      for (let i = 0; i < 2; i++) {
        const db = await connectPostgres({ url: database.url });
        const keygate = createKeygate({
          ...UNLIMITED,
          store: db.store,
          auditSinks: [db.auditSink],
        });
        opened.push(db, keygate);
        const app = await startApp(hono, keygate);
        opened.push(app);
        instances.push({ db, keygate, app });
      }
      const { secret, key } = await instances[0]!.keygate.keys.create({
        name: 'shared',
        scopes: ['read:data'],
      });
      const request = { path: '/v1/query/websites', headers: { 'x-api-key': secret } };
      const half = REQUESTS / 2;
      // Flushes while the load runs: several writes of each instance land in the same minute's row.
      const flushing = setInterval(() => {
        for (const { keygate } of instances) void keygate.audit.flush();
      }, 50);
      const statuses = await Promise.all(
        instances.map(({ app }) => loadFromWorker(app.origin, new Array(half).fill(request), 25)),
      ).finally(() => clearInterval(flushing));
      expect(statuses.flat().every((status) => status === 200)).toBe(true);
      for (const { app, keygate, db } of instances) {
        await app.close();
        await keygate.close();
        await db.close();
      }

      const [served] = await database.sql<Array<{ n: number; rows: number }>>`
        select sum(authenticated)::int as n, count(*)::int as rows from keygate_usage_counts
        where key_id = ${key.id}`;
      expect(served!.n).toBe(REQUESTS);
      const [batches] = await database.sql<Array<{ n: number }>>`
        select count(*)::int as n from keygate_usage_batches`;
      // Several flushes from each instance went into the same rows: far fewer rows than flushes.
      expect(batches!.n).toBeGreaterThan(served!.rows);
    },
    TIMEOUT_MS,
  );
});
