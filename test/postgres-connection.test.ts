import { createServer, type Server, type Socket } from 'node:net';
import { createKeyHasher } from '@keygate/core';
import {
  connectPostgres,
  type KeyDatabase,
  openKeyDatabase,
  PostgresStoreError,
} from '@keygate/postgres';
import { sql } from 'drizzle-orm';
import { afterEach, describe, expect, it } from 'vitest';
import { createTestDatabase, databaseProxy } from './support/postgres.js';

const digest = createKeyHasher().digest('sk_live_never_stored');
const opened: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((resource) => resource.close()));
});

async function connect(url: string, options: { statementTimeoutMs?: number } = {}) {
  const database = await connectPostgres({ url, ...options });
  opened.push(database);
  return database;
}

/** How long `call` took to reject, and with what. */
async function rejection(call: () => Promise<unknown>): Promise<{ error: unknown; ms: number }> {
  const started = Date.now();
  try {
    await call();
  } catch (error) {
    return { error, ms: Date.now() - started };
  }
  throw new Error('expected the call to reject');
}

/** A TCP server that accepts connections and never answers: a hung or black-holed database. */
async function silentServer(): Promise<{ url: string; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `postgres://postgres@127.0.0.1:${port}/keygate`,
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

describe('connectPostgres', () => {
  it('rejects quickly when nothing listens, naming the cause and not the digest', async () => {
    const database = await connect('postgres://postgres@127.0.0.1:1/x');
    const { error, ms } = await rejection(() => database.store.findByDigest(digest));
    expect(ms).toBeLessThan(6000);
    expect(error).toBeInstanceOf(PostgresStoreError);
    expect(error).toMatchObject({ code: 'ECONNREFUSED' });
    expect((error as Error).message).toMatch(/^\[keygate:postgres\] findByDigest failed: /);
    expect((error as Error).message).not.toContain(digest);
  });

  it('rejects within the connect timeout when the server never answers', async () => {
    const server = await silentServer();
    opened.push(server);
    const database = await connect(server.url);
    const { error, ms } = await rejection(() => database.store.findByDigest(digest));
    expect(ms).toBeLessThan(6500);
    expect(error).toMatchObject({ code: 'CONNECT_TIMEOUT' });
  });

  it('rejects when an open connection stops answering (network partition)', async () => {
    const testDatabase = await createTestDatabase();
    opened.push(testDatabase);
    const proxy = await databaseProxy(testDatabase.url);
    const database = await connect(proxy.url);
    opened.push({ close: proxy.stop });
    expect(await database.store.get('key_x')).toBeNull();
    proxy.freeze();
    const { error, ms } = await rejection(() => database.store.findByDigest(digest));
    expect(ms).toBeLessThan(7000);
    expect(error).toMatchObject({ code: 'QUERY_TIMEOUT' });
  });

  it('rejects a migration on start when the server is unreachable', async () => {
    const { ms } = await rejection(() =>
      connectPostgres({ url: 'postgres://postgres@127.0.0.1:1/x', migrate: true }),
    );
    expect(ms).toBeLessThan(6000);
  });

  it('cancels a statement that runs past the statement timeout', async () => {
    const testDatabase = await createTestDatabase();
    opened.push(testDatabase);
    const database = await connect(testDatabase.url, { statementTimeoutMs: 100 });
    const { error, ms } = await rejection(() => database.db.execute(sql`select pg_sleep(3)`));
    expect(ms).toBeLessThan(2000);
    expect(String((error as { cause?: unknown }).cause)).toMatch(/statement timeout/);
  });

  it('sets a 5 s statement timeout by default', async () => {
    const testDatabase = await createTestDatabase();
    opened.push(testDatabase);
    const database = await connect(testDatabase.url);
    const rows = await database.db.execute<{ statement_timeout: string }>(
      sql`show statement_timeout`,
    );
    expect(JSON.stringify(rows)).toContain('"statement_timeout":"5s"');
  });

  it('closes once, however often it is asked', async () => {
    const testDatabase = await createTestDatabase();
    opened.push(testDatabase);
    const database = await connectPostgres({ url: testDatabase.url });
    await database.store.get('key_x');
    await Promise.all([database.close(), database.close()]);
    await expect(database.store.get('key_x')).rejects.toBeInstanceOf(PostgresStoreError);
  });
});

describe('openKeyDatabase', () => {
  it('uses Postgres when given a URL, and migrates it', async () => {
    const testDatabase = await createTestDatabase({ migrate: false });
    opened.push(testDatabase);
    const database: KeyDatabase = await openKeyDatabase({ databaseUrl: testDatabase.url });
    opened.push(database);
    expect(database.kind).toBe('postgres');
    expect(await database.store.list({})).toEqual([]);
    const [row] = await testDatabase.sql<{ exists: boolean }[]>`
      select to_regclass('keygate_api_keys') is not null as exists`;
    expect(row?.exists).toBe(true);
  });
});
