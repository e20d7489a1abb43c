import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type ApiKeyRecord,
  type AuditEvent,
  createKeyFormat,
  createKeyHasher,
  type KeyEnvironment,
  KeygateError,
  type KeyType,
  type NewKeyRecord,
  type UsageRow,
} from '@keygate/core';
import {
  apiKeys,
  connectPostgres,
  type KeygateDatabase,
  openEmbedded,
  PostgresAuditSink,
  PostgresKeyStore,
  PostgresStoreError,
  usageCounts,
} from '@keygate/postgres';
import { eq, sql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase } from './support/postgres.js';

const format = createKeyFormat();
const hasher = createKeyHasher();

/** A database for one driver, with every statement the store sends recorded in `statements`. */
interface Backend {
  db: KeygateDatabase;
  statements: string[];
  close(): Promise<void>;
}

const backends: Record<string, () => Promise<Backend>> = {
  postgres: async () => {
    const statements: string[] = [];
    const database = await createTestDatabase({
      logger: { logQuery: (query) => statements.push(query) },
    });
    return { db: database.db, statements, close: database.close };
  },
  pglite: async () => {
    const statements: string[] = [];
    const dataDir = await mkdtemp(join(tmpdir(), 'keygate-pglite-'));
    const database = await openEmbedded({
      dataDir,
      logger: { logQuery: (query) => statements.push(query) },
    });
    return {
      db: database.db,
      statements,
      close: async () => {
        await database.close();
        await rm(dataDir, { recursive: true, force: true });
      },
    };
  },
};

let sequence = 0;

/** A key as the core hands it to the store, and its plaintext secret kept aside for the test. */
function newKey(
  overrides: Partial<NewKeyRecord> = {},
  type: KeyType = 'secret',
  environment: KeyEnvironment = 'live',
): { secret: string; key: NewKeyRecord } {
  const generated = format.generate(type, environment);
  sequence++;
  return {
    secret: generated.secret,
    key: {
      id: `key_${sequence.toString().padStart(6, '0')}_${generated.start.slice(-6)}`,
      name: `key ${sequence}`,
      ownerId: 'org_a',
      type,
      environment,
      digest: hasher.digest(generated.secret),
      digestVersion: hasher.version,
      prefix: generated.prefix,
      start: generated.start,
      scopes: ['read:data'],
      resources: null,
      restrictions: null,
      rateLimit: null,
      metadata: null,
      expiresAt: null,
      ...overrides,
    },
  };
}

function auditEvent(overrides: Partial<AuditEvent>): AuditEvent {
  sequence++;
  return {
    id: `evt_${sequence}`,
    at: new Date(),
    action: 'auth.succeeded',
    outcome: 'success',
    reason: null,
    keyId: null,
    keyStart: null,
    ownerId: null,
    actor: null,
    ip: '203.0.113.9',
    userAgent: 'curl/8',
    method: 'GET',
    path: '/v1/query/websites',
    requestId: null,
    detail: null,
    ...overrides,
  };
}

/** Runs `action` and returns the statements it sent. */
async function statementsOf(backend: Backend, action: () => Promise<unknown>): Promise<string[]> {
  const before = backend.statements.length;
  await action();
  return backend.statements.slice(before);
}

/** Creating a PGlite cluster runs initdb in WebAssembly: seconds of CPU, minutes under load. */
const PGLITE_SETUP_TIMEOUT_MS = 240_000;

describe.each(Object.keys(backends))('PostgresKeyStore on %s', (driver) => {
  let backend: Backend;
  let store: PostgresKeyStore;

  beforeAll(async () => {
    backend = await backends[driver]!();
    store = new PostgresKeyStore(backend.db);
  }, PGLITE_SETUP_TIMEOUT_MS);
  afterAll(() => backend.close());

  describe('create, get, findByDigest', () => {
    it('stores every field and returns the record', async () => {
      const expiresAt = new Date(Date.now() + 86_400_000);
      const { key } = newKey({
        scopes: ['read:data', 'write:llm'],
        resources: ['website:w_1', 'link:*'],
        restrictions: {
          ips: ['10.0.0.0/8'],
          referrers: ['https://*.example.com'],
          endpoints: ['GET /v1/**'],
        },
        rateLimit: { perSecond: 5, burst: 50, daily: 1000 },
        metadata: { team: 'growth', nested: { count: 2 } },
        expiresAt,
      });
      const created = await store.create(key);

      expect(created).toEqual<ApiKeyRecord>({
        ...key,
        createdAt: expect.any(Date),
        updatedAt: expect.any(Date),
        revokedAt: null,
        previousDigest: null,
        previousDigestExpiresAt: null,
        leak: null,
      });
      expect(Math.abs(created.createdAt.getTime() - Date.now())).toBeLessThan(60_000);
      expect(await store.get(key.id)).toEqual(created);
      expect(await store.findByDigest(key.digest)).toEqual(created);
    });

    it('keeps an empty resource list apart from global access (null)', async () => {
      const none = await store.create(newKey({ resources: [] }).key);
      const global = await store.create(newKey({ resources: null }).key);
      expect((await store.get(none.id))?.resources).toEqual([]);
      expect((await store.get(global.id))?.resources).toBeNull();
    });

    it('answers null for unknown ids and digests', async () => {
      expect(await store.get('key_missing')).toBeNull();
      expect(await store.findByDigest(hasher.digest('sk_live_unknown'))).toBeNull();
      expect(await store.update('key_missing', { name: 'x' })).toBeNull();
      expect(await store.revoke('key_missing', new Date())).toBeNull();
      expect(
        await store.rotate('key_missing', {
          digest: hasher.digest('x'),
          digestVersion: 0,
          start: 'sk_live_x',
          previousDigestExpiresAt: null,
        }),
      ).toBeNull();
    });

    it('refuses a second key with the same id or digest', async () => {
      const { key } = newKey();
      await store.create(key);
      const sameId = store.create({ ...newKey().key, id: key.id });
      await expect(sameId).rejects.toBeInstanceOf(PostgresStoreError);
      await expect(sameId).rejects.toMatchObject({ code: '23505' });
      await expect(store.create({ ...newKey().key, digest: key.digest })).rejects.toMatchObject({
        code: '23505',
      });
    });

    it('looks a key up by its digest in one statement', async () => {
      const { key } = newKey();
      await store.create(key);
      const statements = await statementsOf(backend, () => store.findByDigest(key.digest));
      expect(statements).toHaveLength(1);
    });
  });

  describe('values the database cannot hold', () => {
    it('are refused as the request’s fault (KeygateError), and nothing is stored', async () => {
      const refusals = [
        newKey({ name: 'nul\u0000name' }).key,
        newKey({ metadata: { note: 'nul\u0000' } }).key,
        newKey({ metadata: { note: '\ud800' } }).key,
        newKey({ resources: ['website:\u0000'] }).key,
        newKey({ expiresAt: new Date('+275760-09-13T00:00:00.000Z') }).key,
      ];
      for (const key of refusals) {
        const error = await store.create(key).then(
          () => null,
          (e: unknown) => e,
        );
        expect(error, JSON.stringify(key)).toBeInstanceOf(KeygateError);
        expect(error).toMatchObject({
          code: 'INVALID_REQUEST',
          message: 'the database cannot store a value of this request',
        });
        expect((error as Error).cause).toBeInstanceOf(PostgresStoreError);
        expect(await store.get(key.id)).toBeNull();
      }
    });
  });

  describe('digestVersions', () => {
    it('names every digest version its keys use', async () => {
      await store.create(newKey({ digestVersion: 1 }).key);
      expect((await store.digestVersions()).sort()).toEqual([0, 1]);
    });
  });

  describe('update', () => {
    it('changes the patched fields only and moves updatedAt', async () => {
      const created = await store.create(
        newKey({ metadata: { a: 1 }, resources: ['website:w_1'] }).key,
      );
      const updated = await store.update(created.id, {
        name: 'renamed',
        scopes: ['read:data', 'track:events'],
        resources: null,
        expiresAt: new Date('2030-01-01T00:00:00Z'),
      });
      expect(updated).toEqual({
        ...created,
        name: 'renamed',
        scopes: ['read:data', 'track:events'],
        resources: null,
        expiresAt: new Date('2030-01-01T00:00:00Z'),
        updatedAt: expect.any(Date),
      });
      expect(updated!.updatedAt.getTime()).toBeGreaterThanOrEqual(created.updatedAt.getTime());
      expect(await store.get(created.id)).toEqual(updated);
    });

    it('ignores anything outside KeyPatch, such as a digest or an owner', async () => {
      const created = await store.create(newKey().key);
      const sneaky = { name: 'n', digest: 'f'.repeat(64), ownerId: 'org_other' };
      const updated = await store.update(created.id, sneaky);
      expect(updated).toMatchObject({ name: 'n', digest: created.digest, ownerId: 'org_a' });
    });
  });

  describe('list', () => {
    const owner = `org_list_${driver}`;
    const ids: string[] = [];

    beforeAll(async () => {
      for (let i = 0; i < 7; i++) ids.push((await store.create(newKey({ ownerId: owner }).key)).id);
      await store.create(newKey({ ownerId: `${owner}_other` }).key);
      await store.revoke(ids[2]!, new Date());
    });

    it("lists an owner's keys newest first, without revoked keys by default", async () => {
      const listed = await store.list({ ownerId: owner });
      expect(listed.map((k) => k.id)).toEqual(ids.filter((id) => id !== ids[2]).reverse());
      expect(listed.every((k) => k.ownerId === owner)).toBe(true);
    });

    it('includes revoked keys when asked', async () => {
      const listed = await store.list({ ownerId: owner, includeRevoked: true });
      expect(listed.map((k) => k.id)).toEqual([...ids].reverse());
    });

    it('pages with limit and an after cursor, without gaps or repeats', async () => {
      const seen: string[] = [];
      let after: string | undefined;
      for (;;) {
        const page = await store.list({ ownerId: owner, includeRevoked: true, limit: 3, after });
        seen.push(...page.map((k) => k.id));
        if (page.length < 3) break;
        after = page.at(-1)!.id;
      }
      expect(seen).toEqual([...ids].reverse());
    });

    it('lists every owner when none is given', async () => {
      const owners = new Set((await store.list({ limit: 1000 })).map((k) => k.ownerId));
      expect(owners.has(owner)).toBe(true);
      expect(owners.has(`${owner}_other`)).toBe(true);
    });

    it('returns nothing after a cursor that names no key', async () => {
      expect(await store.list({ ownerId: owner, after: 'key_missing' })).toEqual([]);
    });

    it("takes another owner's key for no cursor, exactly as an unknown id", async () => {
      const [theirs] = await store.list({ ownerId: `${owner}_other` });
      expect(await store.list({ ownerId: owner, after: theirs!.id })).toEqual([]);
      // Without an owner the id is a cursor like any other.
      expect((await store.list({ after: theirs!.id, limit: 1000 })).length).toBeGreaterThan(0);
    });

    it('breaks ties on creation time by id, descending', async () => {
      const at = new Date('2001-01-01T00:00:00Z');
      const tied = ['key_tie_a', 'key_tie_c', 'key_tie_b'];
      await backend.db
        .insert(apiKeys)
        .values(
          tied.map((id) => ({ ...newKey({ id, ownerId: `${owner}_tie` }).key, createdAt: at })),
        );
      const first = await store.list({ ownerId: `${owner}_tie`, limit: 2 });
      const rest = await store.list({ ownerId: `${owner}_tie`, after: first.at(-1)!.id });
      expect([...first, ...rest].map((k) => k.id)).toEqual(['key_tie_c', 'key_tie_b', 'key_tie_a']);
    });

    it('returns 100 keys by default and at most 1,000', async () => {
      const bulkOwner = `${owner}_bulk`;
      await backend.db
        .insert(apiKeys)
        .values(Array.from({ length: 1005 }, () => newKey({ ownerId: bulkOwner }).key));
      expect(await store.list({ ownerId: bulkOwner })).toHaveLength(100);
      expect(await store.list({ ownerId: bulkOwner, limit: 5000 })).toHaveLength(1000);
      expect(await store.list({ ownerId: bulkOwner, limit: 0 })).toEqual([]);
    });
  });

  describe('rotate', () => {
    it('without grace, drops the old digest at once', async () => {
      const { key } = newKey();
      await store.create(key);
      const next = newKey().key;
      const rotated = await store.rotate(key.id, {
        digest: next.digest,
        digestVersion: 1,
        start: next.start,
        previousDigestExpiresAt: null,
      });
      expect(rotated).toMatchObject({
        id: key.id,
        digest: next.digest,
        digestVersion: 1,
        start: next.start,
        previousDigest: null,
        previousDigestExpiresAt: null,
        scopes: key.scopes,
      });
      expect(await store.findByDigest(key.digest)).toBeNull();
      expect((await store.findByDigest(next.digest))?.id).toBe(key.id);
    });

    it('with a grace end already past, drops the old digest at once', async () => {
      const { key } = newKey();
      await store.create(key);
      const next = newKey().key;
      await store.rotate(key.id, {
        digest: next.digest,
        digestVersion: 0,
        start: next.start,
        previousDigestExpiresAt: new Date(Date.now() - 1000),
      });
      expect(await store.findByDigest(key.digest)).toBeNull();
      expect((await store.get(key.id))?.previousDigest).toBeNull();
    });

    it('with grace, finds the key by either digest until the next rotation', async () => {
      const { key } = newKey();
      await store.create(key);
      const graceUntil = new Date(Date.now() + 3_600_000);
      const second = newKey().key;
      const rotated = await store.rotate(key.id, {
        digest: second.digest,
        digestVersion: 0,
        start: second.start,
        previousDigestExpiresAt: graceUntil,
      });
      expect(rotated).toMatchObject({
        digest: second.digest,
        previousDigest: key.digest,
        previousDigestExpiresAt: graceUntil,
      });
      expect(await store.findByDigest(key.digest)).toEqual(rotated);
      expect(await store.findByDigest(second.digest)).toEqual(rotated);

      const third = newKey().key;
      await store.rotate(key.id, {
        digest: third.digest,
        digestVersion: 0,
        start: third.start,
        previousDigestExpiresAt: graceUntil,
      });
      expect(await store.findByDigest(key.digest)).toBeNull();
      expect((await store.findByDigest(second.digest))?.previousDigest).toBe(second.digest);
      expect((await store.findByDigest(third.digest))?.id).toBe(key.id);

      const fourth = newKey().key;
      await store.rotate(key.id, {
        digest: fourth.digest,
        digestVersion: 0,
        start: fourth.start,
        previousDigestExpiresAt: null,
      });
      expect(await store.findByDigest(second.digest)).toBeNull();
      expect(await store.findByDigest(third.digest)).toBeNull();
      expect((await store.findByDigest(fourth.digest))?.id).toBe(key.id);
    });
  });

  describe('revoke', () => {
    it('sets revokedAt once and keeps the first time', async () => {
      const { key } = newKey();
      await store.create(key);
      const first = new Date('2031-05-01T10:00:00.123Z');
      const revoked = await store.revoke(key.id, first);
      expect(revoked).toMatchObject({ revokedAt: first, updatedAt: first });
      const again = await store.revoke(key.id, new Date('2031-06-01T10:00:00Z'));
      expect(again?.revokedAt).toEqual(first);
      // The store still finds it: telling the client apart from an unknown key is the core's call.
      expect((await store.findByDigest(key.digest))?.revokedAt).toEqual(first);
    });
  });

  describe('secrets at rest', () => {
    it('no column of any row holds a plaintext secret', async () => {
      const secrets: string[] = [];
      for (const type of ['secret', 'public'] as const) {
        const { secret, key } = newKey({}, type, 'test');
        secrets.push(secret);
        await store.create(key);
        const rotatedTo = format.generate(type, 'test');
        secrets.push(rotatedTo.secret);
        await store.rotate(key.id, {
          digest: hasher.digest(rotatedTo.secret),
          digestVersion: hasher.version,
          start: rotatedTo.start,
          previousDigestExpiresAt: new Date(Date.now() + 60_000),
        });
      }
      const rows = await backend.db.execute<{ row: string }>(
        sql`select row_to_json(t)::text as row from keygate_api_keys t`,
      );
      const dump = JSON.stringify(rows);
      expect(dump).toContain(hasher.digest(secrets[0]!));
      for (const secret of secrets) {
        expect(dump).not.toContain(secret);
        // The body alone (without its prefix) must not be there either.
        expect(dump).not.toContain(secret.slice(8));
      }
    });
  });

  describe('PostgresAuditSink', () => {
    let sink: PostgresAuditSink;
    beforeAll(() => {
      sink = new PostgresAuditSink(backend.db);
    });

    it('writes a batch in one INSERT and reads it back newest first', async () => {
      const base = Date.UTC(2034, 0, 1);
      const events = [
        auditEvent({ at: new Date(base + 1000), keyId: 'key_audit_1', ownerId: 'org_audit' }),
        auditEvent({
          at: new Date(base + 3000),
          keyId: 'key_audit_1',
          ownerId: 'org_audit',
          action: 'auth.failed',
          outcome: 'failure',
          reason: 'revoked',
          keyStart: 'sk_live_AbC123',
          detail: { required: ['read:data'] },
        }),
        auditEvent({ at: new Date(base + 2000), keyId: 'key_audit_2', ownerId: 'org_audit' }),
        auditEvent({ at: new Date(base + 4000), keyId: 'key_audit_3', ownerId: 'org_other' }),
      ];
      const statements = await statementsOf(backend, () => sink.write(events));
      expect(statements).toHaveLength(1);
      expect(statements[0]).toMatch(/^insert into/);

      expect(await sink.query({ keyId: 'key_audit_1' })).toEqual([events[1], events[0]]);
      expect(await sink.query({ ownerId: 'org_audit' })).toEqual([events[1], events[2], events[0]]);
      expect(await sink.query({ ownerId: 'org_audit', limit: 1 })).toEqual([events[1]]);
      expect((await sink.query({ limit: 1000 })).map((e) => e.id)).toEqual(
        expect.arrayContaining(events.map((e) => e.id)),
      );
    });

    it('does not duplicate a batch written twice (a retry after a lost reply)', async () => {
      const events = [auditEvent({ keyId: 'key_audit_retry' })];
      await sink.write(events);
      await sink.write(events);
      expect(await sink.query({ keyId: 'key_audit_retry' })).toHaveLength(1);
    });

    it('writes nothing for an empty batch', async () => {
      expect(await statementsOf(backend, () => sink.write([]))).toEqual([]);
    });

    it('stores what Postgres text cannot hold (NUL, lone surrogates) as U+FFFD, in every column', async () => {
      const odd = 'a\u0000b\ud800c';
      const event = auditEvent({
        keyId: 'key_audit_odd',
        path: `/v1/${odd}`,
        userAgent: odd,
        reason: odd,
        detail: { resource: `website:${odd}`, 'k\u0000': 1 },
      });
      await sink.write([event]);
      const [stored] = await sink.query({ keyId: 'key_audit_odd' });
      const replaced = 'a\ufffdb\ufffdc';
      expect(stored).toMatchObject({
        path: `/v1/${replaced}`,
        userAgent: replaced,
        reason: replaced,
        detail: { resource: `website:${replaced}`, 'k\ufffd': 1 },
      });
    });

    describe('usage', () => {
      const minute = new Date(Date.UTC(2034, 5, 1, 10, 7));
      const at = (seconds: number) => new Date(minute.getTime() + seconds * 1000);
      function row(overrides: Partial<UsageRow> = {}): UsageRow {
        return {
          minute,
          keyId: 'key_usage_1',
          keyStart: 'sk_live_UsAgE1',
          ownerId: 'org_usage',
          ip: '203.0.113.9',
          userAgent: 'curl/8',
          method: 'GET',
          path: '/v1/query/websites',
          authenticated: 1,
          scopeChecks: 0,
          resourceChecks: 0,
          firstSeen: at(10),
          lastSeen: at(20),
          ...overrides,
        };
      }
      /** The key's rows, by IP and path length. */
      const stored = async (keyId: string) =>
        (await backend.db.select().from(usageCounts).where(eq(usageCounts.keyId, keyId))).sort(
          (a, b) =>
            (a.ip ?? '').localeCompare(b.ip ?? '') || (a.path?.length ?? 0) - (b.path?.length ?? 0),
        );

      it('adds each batch to the row of the same key, client, path and minute, in one statement', async () => {
        const first = [row({ authenticated: 5, scopeChecks: 5 })];
        const statements = await statementsOf(backend, () =>
          sink.writeUsage({ id: 'batch_a', rows: first }),
        );
        expect(statements).toHaveLength(1);
        expect(statements[0]).toMatch(/unnest\(/);
        // Another instance (or a later flush) in the same minute.
        await sink.writeUsage({
          id: 'batch_b',
          rows: [
            row({ authenticated: 3, resourceChecks: 1, firstSeen: at(5), lastSeen: at(15) }),
            row({ authenticated: 2, ip: '198.51.100.1' }),
            row({ authenticated: 4, path: `/v1/${'x'.repeat(3_000)}` }),
          ],
        });
        const rows = await stored('key_usage_1');
        const counts = (r: (typeof rows)[number]) => [
          r.authenticated,
          r.scopeChecks,
          r.resourceChecks,
        ];
        expect(rows.map((r) => [r.ip, r.path?.length, ...counts(r)])).toEqual([
          ['198.51.100.1', 18, 2, 0, 0],
          ['203.0.113.9', 18, 8, 5, 1],
          ['203.0.113.9', 3_004, 4, 0, 0],
        ]);
        expect(rows[1]).toMatchObject({ firstSeen: at(5), lastSeen: at(20) });
      });

      it('counts a batch once, however often it is retried (a lost reply)', async () => {
        const batch = {
          id: 'batch_retry',
          rows: [row({ keyId: 'key_usage_2', authenticated: 7 })],
        };
        await sink.writeUsage(batch);
        await sink.writeUsage(batch);
        await Promise.all([sink.writeUsage(batch), sink.writeUsage(batch)]);
        expect((await stored('key_usage_2')).map((r) => r.authenticated)).toEqual([7]);
      });

      it('merges rows that differ only in characters Postgres cannot store', async () => {
        await sink.writeUsage({
          id: 'batch_nul',
          rows: [
            row({ keyId: 'key_usage_3', path: '/a\u0000', authenticated: 1 }),
            row({ keyId: 'key_usage_3', path: '/a\ufffd', authenticated: 2 }),
          ],
        });
        expect((await stored('key_usage_3')).map((r) => [r.path, r.authenticated])).toEqual([
          ['/a\ufffd', 3],
        ]);
      });

      it('reads each key’s last use: the latest last_seen of its latest minute, one statement', async () => {
        const t = (m: number, s: number) => new Date(Date.UTC(2035, 0, 1, 8, m, s));
        await sink.writeUsage({
          id: 'batch_last_used',
          rows: [
            row({ keyId: 'key_last_1', minute: t(1, 0), firstSeen: t(1, 2), lastSeen: t(1, 58) }),
            row({ keyId: 'key_last_1', minute: t(3, 0), firstSeen: t(3, 1), lastSeen: t(3, 9) }),
            row({
              keyId: 'key_last_1',
              minute: t(3, 0),
              ip: '198.51.100.7',
              firstSeen: t(3, 4),
              lastSeen: t(3, 41),
            }),
            row({ keyId: 'key_last_2', minute: t(2, 0), firstSeen: t(2, 5), lastSeen: t(2, 6) }),
          ],
        });
        let latest: Map<string, Date> | undefined;
        const statements = await statementsOf(backend, async () => {
          latest = await sink.lastUsed(['key_last_1', 'key_last_2', 'key_never_used']);
        });
        expect(statements).toHaveLength(1);
        expect(latest).toEqual(
          new Map([
            ['key_last_1', t(3, 41)],
            ['key_last_2', t(2, 6)],
          ]),
        );
        expect(await sink.lastUsed([])).toEqual(new Map());
      });

      it('reads served from the counts and failures from the events, by bucket', async () => {
        const hour = (h: number, m = 0) => new Date(Date.UTC(2034, 6, 1, h, m));
        await sink.writeUsage({
          id: 'batch_read',
          rows: [
            row({ keyId: 'key_usage_4', minute: hour(9, 59), authenticated: 4 }),
            row({ keyId: 'key_usage_4', minute: hour(10, 0), authenticated: 3 }),
            row({ keyId: 'key_usage_4', minute: hour(10, 59), authenticated: 2, ip: null }),
            row({ keyId: 'key_usage_4', minute: hour(10, 1), authenticated: 0, scopeChecks: 9 }),
            row({ keyId: 'key_usage_4', minute: hour(12, 0), authenticated: 1 }),
            row({ keyId: 'key_usage_5', minute: hour(11, 0), authenticated: 6 }),
          ],
        });
        const failed = (minute: Date, reason: string, keyId = 'key_usage_4') =>
          auditEvent({ at: minute, keyId, action: 'auth.failed', outcome: 'failure', reason });
        await sink.write([
          failed(hour(10, 30), 'rate_limited'),
          failed(hour(10, 31), 'rate_limited'),
          failed(hour(11, 2), 'revoked'),
          auditEvent({
            at: hour(11, 3),
            keyId: 'key_usage_4',
            action: 'scope.checked',
            outcome: 'failure',
            reason: 'insufficient_scope',
          }),
          auditEvent({ at: hour(11, 4), keyId: 'key_usage_4', action: 'key.rotated' }),
          failed(hour(11, 5), 'revoked', 'key_usage_5'),
        ]);
        const counts = await sink.usage({
          keyId: 'key_usage_4',
          from: hour(10),
          to: hour(12),
          interval: 'hour',
        });
        expect(counts.sort((a, b) => a.start.getTime() - b.start.getTime())).toEqual([
          { start: hour(10), served: 5, failed: 0, rateLimited: 2 },
          { start: hour(11), served: 0, failed: 2, rateLimited: 0 },
        ]);
        const daily = await sink.usage({
          keyId: 'key_usage_4',
          from: new Date(Date.UTC(2034, 6, 1)),
          to: new Date(Date.UTC(2034, 6, 2)),
          interval: 'day',
        });
        expect(daily).toEqual([
          { start: new Date(Date.UTC(2034, 6, 1)), served: 10, failed: 2, rateLimited: 2 },
        ]);
      });
    });
  });
});

describe('PostgresKeyStore reading keys through postgres.js itself', () => {
  it('finds the same record as through drizzle, by its digest or its previous one', async () => {
    const database = await createTestDatabase();
    // As the apps have it: drizzle and the store's lookup on one postgres.js client.
    const connected = await connectPostgres({ url: database.url });
    try {
      const viaDrizzle = new PostgresKeyStore(database.db);
      const direct = connected.store;
      const { key } = newKey({
        resources: ['website:w_1', 'link:*'],
        restrictions: { ips: ['10.0.0.0/8'], endpoints: ['GET /v1/**'] },
        rateLimit: { perSecond: 0.5, burst: 5 },
        metadata: { team: 'growth', nested: { count: 2 } },
        expiresAt: new Date(Date.now() + 86_400_000),
      });
      await direct.create(key);
      const rotated = await direct.rotate(key.id, {
        digest: hasher.digest('sk_live_next'),
        digestVersion: 0,
        start: 'sk_live_nextxx',
        previousDigestExpiresAt: new Date(Date.now() + 3_600_000),
      });
      await direct.revoke(key.id, new Date());
      const revoked = await viaDrizzle.get(key.id);
      expect(revoked?.previousDigest).toBe(rotated?.previousDigest);
      for (const digest of [hasher.digest('sk_live_next'), key.digest]) {
        const found = await direct.findByDigest(digest);
        expect(found).toEqual(revoked);
        expect(found).toEqual(await viaDrizzle.findByDigest(digest));
        for (const at of [
          'createdAt',
          'updatedAt',
          'expiresAt',
          'revokedAt',
          'previousDigestExpiresAt',
        ] as const) {
          expect(found?.[at], at).toBeInstanceOf(Date);
        }
      }
      expect(await direct.findByDigest(hasher.digest('sk_live_unknown'))).toBeNull();
    } finally {
      await connected.close();
      await database.close();
    }
  });

  it('answers the lookups of requests that arrive together with one statement, each its own key', async () => {
    const database = await createTestDatabase();
    const sent: string[] = [];
    const client = postgres(database.url, {
      max: 4,
      debug: (_connection, query) => sent.push(query),
      onnotice: () => {},
    });
    try {
      const store = new PostgresKeyStore(drizzle(client), { postgresJs: client });
      const keys = Array.from({ length: 300 }, () => newKey().key);
      for (const key of keys) await store.create(key);
      // One key in a rotation's grace period: found by its old digest too.
      const rotated = keys[7]!;
      const next = hasher.digest('sk_live_rotated_next');
      await store.rotate(rotated.id, {
        digest: next,
        digestVersion: 0,
        start: 'sk_live_rotate',
        previousDigestExpiresAt: new Date(Date.now() + 3_600_000),
      });
      const unknown = hasher.digest('sk_live_never_issued');

      const lookups = (digests: string[]) => {
        const before = sent.length;
        return Promise.all(digests.map((d) => store.findByDigest(d))).then((found) => ({
          found,
          statements: sent.slice(before).filter((q) => q.includes('= any(')),
        }));
      };

      const asked = [keys[1]!.digest, rotated.digest, next, unknown, keys[2]!.digest];
      const small = await lookups(asked);
      expect(small.statements).toHaveLength(1);
      expect(small.found.map((k) => k?.id ?? null)).toEqual([
        keys[1]!.id,
        rotated.id,
        rotated.id,
        null,
        keys[2]!.id,
      ]);
      expect(small.found[1]?.digest).toBe(next);
      expect(small.found[0]?.createdAt).toBeInstanceOf(Date);

      // At most 128 digests a statement: 300 lookups at once are three statements.
      const all = await lookups(keys.map((k) => (k === rotated ? next : k.digest)));
      expect(all.statements).toHaveLength(3);
      expect(all.found.map((k) => k?.id)).toEqual(keys.map((k) => k.id));

      // Lookups apart in time are not held back for one another.
      const first = await lookups([keys[3]!.digest]);
      const second = await lookups([keys[4]!.digest]);
      expect([first.found[0]?.id, second.found[0]?.id]).toEqual([keys[3]!.id, keys[4]!.id]);
      expect(first.statements.length + second.statements.length).toBe(2);
    } finally {
      await client.end({ timeout: 5 });
      await database.close();
    }
  });
});
