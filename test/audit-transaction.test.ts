import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type Actor,
  type AuditEvent,
  createKeygate,
  JsonLinesAuditSink,
  type Keygate,
} from '@keygate/core';
import {
  apiKeys,
  auditEvents,
  type KeygateDatabase,
  openEmbedded,
  type PostgresAuditSink,
  type PostgresKeyStore,
} from '@keygate/postgres';
import { eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adapters, startApp } from './conformance/harness.js';
import { HttpClient } from './support/http.js';
import { createTestDatabase } from './support/postgres.js';

/** Opening PGlite compiles its WebAssembly and runs initdb: seconds, more on a shared CPU. */
const PGLITE_TIMEOUT_MS = 240_000;

interface Backend {
  db: KeygateDatabase;
  store: PostgresKeyStore;
  auditSink: PostgresAuditSink;
  close(): Promise<void>;
}

const backends: Array<{ name: string; open: () => Promise<Backend>; timeout?: number }> = [
  { name: 'Postgres server (postgres driver)', open: createTestDatabase },
  {
    name: 'embedded Postgres (PGlite)',
    timeout: PGLITE_TIMEOUT_MS,
    async open() {
      const dataDir = await mkdtemp(join(tmpdir(), 'keygate-audit-tx-'));
      const database = await openEmbedded({ dataDir });
      return {
        ...database,
        async close() {
          await database.close();
          await rm(dataDir, { recursive: true, force: true });
        },
      };
    },
  },
];

const ADMIN: Actor = { id: 'admin_1', ip: '203.0.113.9', userAgent: 'audit-test' };
/** The test trigger refuses audit rows by this actor, as a failing audit insert would. */
const REFUSED: Actor = { id: 'refused', ip: '203.0.113.9' };

describe.each(backends)('key changes and their audit rows, one transaction: $name', (backend) => {
  let database: Backend;
  let keygate: Keygate;
  let jsonLines = '';

  beforeAll(async () => {
    database = await backend.open();
    await database.db.execute(sql`create function keygate_test_refuse_audit() returns trigger
      language plpgsql as $$
      begin
        if new.actor = 'refused' then raise exception 'audit row refused'; end if;
        return new;
      end $$`);
    await database.db.execute(sql`create trigger keygate_test_refuse_audit
      before insert on keygate_audit_events
      for each row execute function keygate_test_refuse_audit()`);
    keygate = createKeygate({
      store: database.store,
      auditSinks: [
        database.auditSink,
        new JsonLinesAuditSink((line) => {
          jsonLines += line;
        }),
      ],
      // Nothing reaches a sink through the queue unless the test flushes it.
      auditQueue: { flushIntervalMs: 3_600_000, batchSize: 100_000 },
    });
  }, backend.timeout);

  afterAll(async () => {
    await keygate?.close();
    await database?.close();
  });

  const rowsFor = (keyId: string) =>
    database.db.select().from(auditEvents).where(eq(auditEvents.keyId, keyId));
  const keyRow = async (id: string) =>
    (await database.db.select().from(apiKeys).where(eq(apiKeys.id, id)))[0];

  it('writes the audit row with the change: there when the call returns, no flush', async () => {
    const issued = await keygate.keys.create({ name: 'ci', scopes: ['read:data'] }, ADMIN);
    const id = issued.key.id;
    const created = await rowsFor(id);
    expect(created).toMatchObject([
      {
        action: 'key.created',
        outcome: 'success',
        keyId: id,
        keyStart: issued.key.start,
        ownerId: issued.key.ownerId,
        actor: 'admin_1',
        ip: '203.0.113.9',
        userAgent: 'audit-test',
      },
    ]);

    await keygate.keys.update(id, { name: 'ci renamed' }, ADMIN);
    const rotated = await keygate.keys.rotate(id, { gracePeriodSeconds: 60 }, ADMIN);
    await keygate.keys.revoke(id, ADMIN);
    const rows = await rowsFor(id);
    expect(rows.map((r) => r.action).sort()).toEqual([
      'key.created',
      'key.revoked',
      'key.rotated',
      'key.updated',
    ]);
    const rotation = rows.find((r) => r.action === 'key.rotated')!;
    expect(rotation.keyStart).toBe(rotated.key.start);
    expect(rotation.detail).toEqual({ gracePeriodSeconds: 60, previousStart: issued.key.start });
    expect(rows.find((r) => r.action === 'key.revoked')!.at).toEqual((await keyRow(id))!.revokedAt);

    // The other sinks get the events through the queue; the table does not get them twice.
    expect(jsonLines).toBe('');
    await keygate.audit.flush();
    const lines = jsonLines
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as AuditEvent);
    expect(lines.map((e) => e.id).sort()).toEqual(rows.map((r) => r.id).sort());
    expect(await rowsFor(id)).toHaveLength(4);
  });

  it('rolls the change back when its audit row cannot be written', async () => {
    const issued = await keygate.keys.create({ name: 'kept', scopes: ['read:data'] }, ADMIN);
    const id = issued.key.id;
    const before = await keyRow(id);
    await keygate.audit.flush();
    const linesBefore = jsonLines;

    await expect(
      keygate.keys.create({ name: 'never stored', scopes: ['read:data'] }, REFUSED),
    ).rejects.toThrow(/audit row refused/);
    await expect(keygate.keys.update(id, { name: 'renamed' }, REFUSED)).rejects.toThrow(
      /audit row refused/,
    );
    await expect(keygate.keys.rotate(id, {}, REFUSED)).rejects.toThrow(/audit row refused/);
    await expect(keygate.keys.revoke(id, REFUSED)).rejects.toThrow(/audit row refused/);

    expect(await keyRow(id)).toEqual(before);
    const named = await database.db.select().from(apiKeys).where(eq(apiKeys.name, 'never stored'));
    expect(named).toHaveLength(0);
    expect(await rowsFor(id)).toHaveLength(1);
    // The old secret still works, and no other sink heard of changes that did not happen.
    const decision = await keygate.authenticate({
      method: 'GET',
      url: '/v1/query/websites',
      headers: new Headers({ 'x-api-key': issued.secret }),
      ip: '203.0.113.9',
    });
    expect(decision.ok).toBe(true);
    await keygate.audit.flush();
    expect(jsonLines.slice(linesBefore.length)).not.toContain('refused');
  });

  it('records nothing for a key that does not exist', async () => {
    const event: AuditEvent = {
      id: 'evt_missing_key',
      at: new Date(),
      action: 'key.revoked',
      outcome: 'success',
      reason: null,
      keyId: 'key_missing',
      keyStart: null,
      ownerId: 'org_default',
      actor: 'admin_1',
      ip: null,
      userAgent: null,
      method: null,
      path: null,
      requestId: null,
      detail: null,
    };
    expect(await database.store.revoke('key_missing', new Date(), event)).toBeNull();
    expect(await rowsFor('key_missing')).toHaveLength(0);
  });
});

describe('key changes over HTTP are audited with the request, in the same transaction', () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let keygate: Keygate;

  beforeAll(async () => {
    database = await createTestDatabase();
    keygate = createKeygate({
      store: database.store,
      auditSinks: [database.auditSink],
      auditQueue: { flushIntervalMs: 3_600_000, batchSize: 100_000 },
    });
  });

  afterAll(async () => {
    await keygate?.close();
    await database?.close();
  });

  it.each(adapters.map((a) => a.name))('%s', async (name) => {
    const admin = await keygate.keys.create({
      name: `admin ${name}`,
      scopes: ['manage:keys', 'read:data'],
    });
    const app = await startApp(adapters.find((a) => a.name === name)!, keygate);
    const client = new HttpClient(app.origin, 1);
    try {
      const requestId = `create-${name}`;
      const answer = await client.send({
        method: 'POST',
        path: '/v1/api-keys?limit=1',
        headers: {
          'x-api-key': admin.secret,
          'x-request-id': requestId,
          'user-agent': 'audit-test',
          'content-type': 'application/json',
        },
        body: JSON.stringify({ name: 'over http', scopes: ['read:data'] }),
      });
      expect(answer.status).toBe(201);
      const created = (JSON.parse(answer.body) as { data: { id: string } }).data;

      const [row] = await database.sql<Array<Record<string, unknown>>>`
        select action, actor, method, path, request_id, user_agent, ip
        from keygate_audit_events where key_id = ${created.id}`;
      expect(row).toEqual({
        action: 'key.created',
        actor: admin.key.id,
        method: 'POST',
        path: '/v1/api-keys',
        request_id: requestId,
        user_agent: 'audit-test',
        ip: expect.stringMatching(/127\.0\.0\.1$/),
      });

      // The request's authentication is counted as the admin key's usage, with the same request line.
      await keygate.audit.flush();
      const auth = await database.sql<Array<Record<string, unknown>>>`
        select key_id, method, path, user_agent, authenticated from keygate_usage_counts
        where key_id = ${admin.key.id}`;
      expect(auth).toEqual([
        {
          key_id: admin.key.id,
          method: 'POST',
          path: '/v1/api-keys',
          user_agent: 'audit-test',
          authenticated: 1,
        },
      ]);
    } finally {
      client.close();
      await app.close();
    }
  });
});
