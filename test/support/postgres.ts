import { randomBytes } from 'node:crypto';
import { connect as connectTcp, createServer, type Socket } from 'node:net';
import {
  type KeygateDatabase,
  migrate,
  type PostgresAuditSink,
  PostgresKeyStore,
} from '@keygate/postgres';
import type { Logger } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';

/** The server the tests use; its `postgres` database only serves to create and drop others. */
export const TEST_SERVER_URL =
  process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

const START_POSTGRES = 'pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start';

export interface TestDatabaseOptions {
  /** Apply keygate's migrations. Default `true`; `false` leaves the database empty. */
  migrate?: boolean;
  /** Receives every statement the store and audit sink send (e.g. to count round trips). */
  logger?: Logger;
}

export interface TestDatabase {
  /** URL of the new database, e.g. for `connectPostgres({ url })` or a child's `DATABASE_URL`. */
  url: string;
  /** A plain postgres-js client on it for assertions in SQL (timestamps come back as `Date`). */
  sql: postgres.Sql;
  /** drizzle over a separate pool on the same database; the store and sink use it. */
  db: KeygateDatabase;
  store: PostgresKeyStore;
  /** `store.auditSink`: with both given to keygate, key changes are audited in their own transaction. */
  auditSink: PostgresAuditSink;
  /** Closes every connection and drops the database. */
  close(): Promise<void>;
}

/**
 * Creates a uniquely named database (`keygate_t_<random>`) on the test server, migrated by
 * default, so test files run in parallel without sharing rows. Call `close()` in `afterAll`.
 *
 * ```ts
 * let database: TestDatabase;
 * beforeAll(async () => { database = await createTestDatabase(); });
 * afterAll(() => database.close());
 * ```
 *
 * Fails, never skips, when the server cannot be reached, saying how to start it.
 */
export async function createTestDatabase(options: TestDatabaseOptions = {}): Promise<TestDatabase> {
  const name = `keygate_t_${randomBytes(6).toString('hex')}`;
  await administer(`create database ${name}`);
  const url = new URL(TEST_SERVER_URL);
  url.pathname = `/${name}`;
  const sql = postgres(url.href, { max: 2, onnotice: () => {} });
  const client = postgres(url.href, { max: 5, onnotice: () => {} });
  const db = drizzle(client, { logger: options.logger ?? false });
  const close = async () => {
    await Promise.all([sql.end({ timeout: 5 }), client.end({ timeout: 5 })]);
    await administer(`drop database if exists ${name} with (force)`);
  };
  try {
    if (options.migrate ?? true) await migrate(db);
  } catch (error) {
    await close();
    throw error;
  }
  const store = new PostgresKeyStore(db);
  return { url: url.href, sql, db, store, auditSink: store.auditSink, close };
}

/** Runs one statement on the server's `postgres` database, where test databases are created. */
async function administer(statement: string): Promise<void> {
  const admin = postgres(TEST_SERVER_URL, { max: 1, connect_timeout: 5, onnotice: () => {} });
  try {
    await admin.unsafe(statement);
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === 'ECONNREFUSED' || code === 'CONNECT_TIMEOUT' || code === 'ENOTFOUND') {
      throw new Error(
        `PostgreSQL is not reachable at ${TEST_SERVER_URL} (${code}). ` +
          `Start it with:\n  ${START_POSTGRES}`,
        { cause: error },
      );
    }
    throw error;
  } finally {
    await admin.end({ timeout: 5 });
  }
}

export interface DatabaseProxy {
  /** The database's URL through the proxy. */
  url: string;
  /** Drops traffic both ways on open connections: a network partition. */
  freeze(): void;
  /** Closes every connection and stops listening: the database is gone (connections refused). */
  stop(): Promise<void>;
}

/** A TCP proxy in front of a test database, to take the database away mid-test. */
export async function databaseProxy(target: string): Promise<DatabaseProxy> {
  const { hostname, port, pathname } = new URL(target);
  const sockets = new Set<Socket>();
  let frozen = false;
  const server = createServer((client) => {
    const upstream = connectTcp(Number(port), hostname);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('error', () => {});
      socket.on('close', () => sockets.delete(socket));
    }
    client.on('data', (chunk) => frozen || upstream.write(chunk));
    upstream.on('data', (chunk) => frozen || client.write(chunk));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as { port: number };
  return {
    url: `postgres://postgres@127.0.0.1:${address.port}${pathname}`,
    freeze: () => {
      frozen = true;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
