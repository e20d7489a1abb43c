import { createKeygate, type Keygate } from '@keygate/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adapters, type RunningApp, startApp } from './conformance/harness.js';
import { loadFromWorker, type SentRequest } from './support/http.js';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';

const REQUESTS = 10_000;
/** A few seconds on an idle machine; generous for a CI runner shared with other suites. */
const TIMEOUT_MS = 120_000;

/** One kind of request in the mix, and what the app must answer and record for it. */
interface Kind {
  name: string;
  request: (secrets: Secrets) => Omit<SentRequest, 'headers'> & { headers: Record<string, string> };
  status: number;
  action: 'auth.succeeded' | 'auth.failed';
  reason: string | null;
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
    action: 'auth.succeeded',
    reason: null,
  },
  {
    name: 'unknown key',
    request: (s) => ({ path: '/v1/query/websites', headers: { 'x-api-key': s.unknown } }),
    status: 401,
    action: 'auth.failed',
    reason: 'unknown',
  },
  {
    name: 'malformed key',
    request: () => ({
      path: '/v1/query/websites',
      headers: { authorization: 'Bearer sk_live_not-a-key' },
    }),
    status: 401,
    action: 'auth.failed',
    reason: 'malformed',
  },
  {
    name: 'no key',
    request: () => ({ path: '/v1/query/websites', headers: {} }),
    status: 401,
    action: 'auth.failed',
    reason: 'missing',
  },
  {
    name: 'missing scope',
    request: (s) => ({ path: '/v1/query/websites', headers: { 'x-api-key': s.writer } }),
    status: 403,
    action: 'auth.succeeded',
    reason: null,
  },
  {
    name: 'wrong website',
    request: (s) => ({ path: '/v1/websites/w_2/analytics', headers: { 'x-api-key': s.reader } }),
    status: 403,
    action: 'auth.succeeded',
    reason: null,
  },
];

describe('audit trail under load (Hono reference app, Postgres sink)', () => {
  let database: TestDatabase;
  let keygate: Keygate;
  let app: RunningApp;
  let secrets: Secrets;

  beforeAll(async () => {
    database = await createTestDatabase();
    keygate = createKeygate({
      store: database.store,
      auditSinks: [database.auditSink],
      authFailureLimit: false,
      tiers: { secret: { perSecond: 1_000_000, burst: 1_000_000, daily: 1_000_000_000 } },
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
    app = await startApp(adapters.find((a) => a.name === 'hono')!, keygate);
  });

  afterAll(async () => {
    // The test shuts the app down itself; this is for when it failed before.
    await app?.close().catch(() => {});
    await keygate?.close();
    await database?.close();
  });

  it(
    'holds exactly one authentication event per request after a graceful shutdown',
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

      // A graceful shutdown: stop taking requests, then flush the audit trail.
      await app.close();
      await keygate.close();

      const rows = await database.sql<
        Array<{ request_id: string; action: string; reason: string | null; n: number }>
      >`select request_id, min(action) as action, min(reason) as reason, count(*)::int as n
      from keygate_audit_events
      where action in ('auth.succeeded', 'auth.failed')
      group by request_id`;
      const recorded = new Map(rows.map((row) => [row.request_id, row]));
      expect(recorded.size).toBe(REQUESTS);
      for (const { id, kind } of requests) {
        const row = recorded.get(id);
        expect(row, id).toBeDefined();
        expect({ id, n: row!.n, action: row!.action, reason: row!.reason }).toEqual({
          id,
          n: 1,
          action: kind.action,
          reason: kind.reason,
        });
      }
      expect(keygate.audit.dropped).toBe(0);
    },
    TIMEOUT_MS,
  );
});
