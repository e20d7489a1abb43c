/**
 * `PostgresSessionStore` (`keygate_page_sessions`, migration 0003) on a Postgres server and on the
 * embedded PGlite: what the core's page sessions ask of it, stored rows checked in SQL.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PageSessionRecord } from '@keygate/core';
import { type KeyDatabase, openEmbedded, type PostgresSessionStore } from '@keygate/postgres';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';

let server: TestDatabase;
let embedded: KeyDatabase;
let scratch: string;

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'keygate-sessions-'));
  [server, embedded] = await Promise.all([
    createTestDatabase(),
    openEmbedded({ dataDir: join(scratch, 'pglite') }),
  ]);
}, 240_000);

afterAll(async () => {
  await Promise.allSettled([server?.close(), embedded?.close()]);
  await rm(scratch, { recursive: true, force: true });
});

const backends: Array<[string, () => { sessions: PostgresSessionStore; count: Counter }]> = [
  [
    'a Postgres server',
    () => ({ sessions: server.store.sessions, count: (keyId) => countIn(server.db, keyId) }),
  ],
  [
    'PGlite',
    () => ({ sessions: embedded.store.sessions, count: (keyId) => countIn(embedded.db, keyId) }),
  ],
];

type Counter = (keyId: string) => Promise<number>;

async function countIn(db: KeyDatabase['db'], keyId: string): Promise<number> {
  const result = await db.execute(
    sql`select count(*)::int as count from keygate_page_sessions where key_id = ${keyId}`,
  );
  const rows = (Array.isArray(result) ? result : (result as { rows: unknown[] }).rows) as Array<{
    count: number;
  }>;
  return rows[0]!.count;
}

let made = 0;
function session(keyId: string, at: number, overrides: Partial<PageSessionRecord> = {}) {
  made++;
  return {
    tokenHash: made.toString(16).padStart(64, '0'),
    keyId,
    keyDigest: 'f'.repeat(64),
    ownerId: 'org_default',
    origin: 'https://keys.example.com',
    createdAt: new Date(at),
    expiresAt: new Date(at + 3_600_000),
    activeUntil: new Date(at + 600_000),
    ...overrides,
  } satisfies PageSessionRecord;
}

describe.each(backends)('PostgresSessionStore on %s', (_, backend) => {
  it('stores a session and answers it while active, by its token hash only', async () => {
    const { sessions } = backend();
    const now = Date.now();
    const stored = session(`key_a${made}`, now);
    await sessions.create(stored, 10);
    expect(await sessions.get(stored.tokenHash, new Date(now))).toEqual(stored);
    expect(await sessions.get(stored.tokenHash, new Date(now + 600_000))).toBeNull();
    expect(await sessions.get('0'.repeat(64), new Date(now))).toBeNull();
  });

  it('keeps at most the cap per key, the newest, even when sign-ins race', async () => {
    const { sessions, count } = backend();
    const keyId = `key_cap${made}`;
    const now = Date.now();
    const all = Array.from({ length: 8 }, (_, i) => session(keyId, now + i));
    await Promise.all(all.map((one) => sessions.create(one, 3)));
    expect(await count(keyId)).toBe(3);
    const newest = session(keyId, now + 100);
    await sessions.create(newest, 3);
    expect(await count(keyId)).toBe(3);
    expect(await sessions.get(newest.tokenHash, new Date(now))).not.toBeNull();
    // Another key's sessions are not touched.
    const other = session(`key_other${made}`, now);
    await sessions.create(other, 1);
    expect(await count(keyId)).toBe(3);
  });

  it('moves the idle end on use, never past the fixed end', async () => {
    const { sessions } = backend();
    const now = Date.now();
    const stored = session(`key_t${made}`, now);
    await sessions.create(stored, 10);
    await sessions.touch(stored.tokenHash, new Date(now + 1_200_000));
    expect((await sessions.get(stored.tokenHash, new Date(now)))?.activeUntil).toEqual(
      new Date(now + 1_200_000),
    );
    await sessions.touch(stored.tokenHash, new Date(now + 86_400_000));
    expect((await sessions.get(stored.tokenHash, new Date(now)))?.activeUntil).toEqual(
      stored.expiresAt,
    );
  });

  it('deletes one session (answering it once), and purges only sessions that are over, a batch at a time', async () => {
    const { sessions, count } = backend();
    const keyId = `key_p${made}`;
    const now = Date.now();
    const stored = session(keyId, now);
    await sessions.create(stored, 10);
    expect(await sessions.delete(stored.tokenHash)).toEqual(stored);
    expect(await sessions.delete(stored.tokenHash)).toBeNull();

    const past = now - 7_200_000;
    for (let i = 0; i < 5; i++) {
      await sessions.create(session(keyId, past + i, { activeUntil: new Date(now - 1) }), 10);
    }
    const live = session(keyId, now);
    await sessions.create(live, 10);
    let purged = 0;
    for (let round = 0; round < 10; round++) {
      const batch = await sessions.purge(new Date(now), 2);
      expect(batch).toBeLessThanOrEqual(2);
      purged += batch;
      if (batch === 0) break;
    }
    expect(purged).toBeGreaterThanOrEqual(5);
    expect(await count(keyId)).toBe(1);
    expect(await sessions.get(live.tokenHash, new Date(now))).not.toBeNull();
  });
});
