import { join, resolve } from 'node:path';
import type { PGlite } from '@electric-sql/pglite';
import type { Logger } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import type { PostgresAuditSink } from './audit-sink.js';
import { lockDataDirectory } from './data-dir-lock.js';
import type { KeygateDatabase } from './database.js';
import { PostgresKeyStore } from './key-store.js';
import { migrate } from './migrate.js';
import type { PostgresStoreOptions } from './store-error.js';

/** An open key database: the drizzle handle, the store and audit sink on it, and its `close()`. */
export interface KeyDatabase {
  /** `postgres`: a Postgres server; `embedded`: PGlite inside this process. */
  readonly kind: 'postgres' | 'embedded';
  readonly db: KeygateDatabase;
  readonly store: PostgresKeyStore;
  /**
   * The audit trail, linked to `store` (it is `store.auditSink`): given to `createKeygate` in
   * `auditSinks`, key changes write their audit event in the change's own transaction.
   */
  readonly auditSink: PostgresAuditSink;
  /** Closes the connections and frees an embedded data directory. Call after `keygate.close()`. */
  close(): Promise<void>;
}

export interface PostgresConnectionOptions {
  /** Connection URL, e.g. `postgres://user:pass@host:5432/db?sslmode=require`. Required. */
  url: string;
  /** Most connections in the pool. Default `10`. */
  max?: number;
  /** Seconds to wait for a connection before a call rejects. Default `5`. */
  connectTimeoutSeconds?: number;
  /** Seconds before an idle connection is closed. Default `30`. */
  idleTimeoutSeconds?: number;
  /** Server-side limit on any one statement, in ms. Default `5000`. */
  statementTimeoutMs?: number;
  /** Apply the shipped migrations before returning. Default `false`: migrate on deploy. */
  migrate?: boolean;
  /** Receives every statement sent (drizzle's `Logger`), for debugging. Default: none. */
  logger?: Logger;
}

/**
 * Opens a pool on a Postgres server with bounded timeouts, so that a database that cannot be
 * reached makes calls reject within seconds (the core then serves cached keys or answers 503).
 */
export async function connectPostgres(options: PostgresConnectionOptions): Promise<KeyDatabase> {
  const {
    url,
    max = 10,
    connectTimeoutSeconds = 5,
    idleTimeoutSeconds = 30,
    statementTimeoutMs = 5000,
    migrate: runMigrations = false,
    logger = false,
  } = options;
  const client = postgres(url, {
    max,
    connect_timeout: connectTimeoutSeconds,
    idle_timeout: idleTimeoutSeconds,
    connection: { statement_timeout: statementTimeoutMs, application_name: 'keygate' },
    // Notices are only "already exists, skipping" from migrations; they would pollute CLI output.
    onnotice: () => {},
  });
  const db = drizzle(client, { logger });
  const close = once(() => client.end({ timeout: 5 }));
  if (runMigrations) {
    try {
      await migrate(db);
    } catch (error) {
      await close();
      throw error;
    }
  }
  // A call may wait for a connection and then for its statement; past both, the server is gone.
  const timeoutMs = Math.max(connectTimeoutSeconds * 1000, statementTimeoutMs) + 1000;
  return handle('postgres', db, close, { timeoutMs });
}

const EMBEDDED_CALL_TIMEOUT_MS = 30_000;

export interface EmbeddedDatabaseOptions {
  /** Where the data live, relative to the working directory. Default `.keygate/pglite`. */
  dataDir?: string;
  /** Apply the shipped migrations before returning. Default `true`. */
  migrate?: boolean;
  /** Receives every statement sent (drizzle's `Logger`), for debugging. Default: none. */
  logger?: Logger;
}

/**
 * Opens the embedded Postgres (PGlite) persisted under `dataDir`. PGlite serves one process:
 * a second process opening the same directory is refused with `DataDirectoryLockedError`.
 */
export async function openEmbedded(options: EmbeddedDatabaseOptions = {}): Promise<KeyDatabase> {
  const { dataDir = '.keygate/pglite', migrate: runMigrations = true, logger = false } = options;
  const { PGlite, drizzlePglite } = await loadPglite();
  const directory = resolve(dataDir);
  const lock = lockDataDirectory(directory);
  let client: PGlite | undefined;
  try {
    // A subdirectory keeps the lock file out of the Postgres data directory.
    const opened = await PGlite.create(join(directory, 'pgdata'));
    client = opened;
    const db = drizzlePglite(opened, { logger });
    if (runMigrations) await migrate(db);
    return handle(
      'embedded',
      db,
      once(async () => {
        try {
          await opened.close();
        } finally {
          lock.release();
        }
      }),
      // In process, nothing is lost to the network; only a runaway statement needs a bound.
      { timeoutMs: EMBEDDED_CALL_TIMEOUT_MS },
    );
  } catch (error) {
    await client?.close();
    lock.release();
    throw error;
  }
}

/** `openEmbedded` needs `@electric-sql/pglite`, an optional peer dependency, and it is not installed. */
export class EmbeddedDatabaseUnavailableError extends Error {
  readonly code = 'PGLITE_MISSING';

  constructor(cause: unknown) {
    super(
      '[keygate:PGLITE_MISSING] the embedded database needs @electric-sql/pglite, which is not ' +
        'installed: run `npm install @electric-sql/pglite`, or set DATABASE_URL to use a ' +
        'Postgres server.',
      { cause },
    );
    this.name = 'EmbeddedDatabaseUnavailableError';
  }
}

/** Loaded on demand: PGlite is an optional peer, and apps on a Postgres server never load its WebAssembly. */
async function loadPglite() {
  try {
    const { PGlite } = await import('@electric-sql/pglite');
    const { drizzle: drizzlePglite } = await import('drizzle-orm/pglite');
    return { PGlite, drizzlePglite };
  } catch (error) {
    const { code, message } = error as NodeJS.ErrnoException;
    const notFound = code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND';
    if (notFound && message.includes('@electric-sql/pglite')) {
      throw new EmbeddedDatabaseUnavailableError(error);
    }
    throw error;
  }
}

export interface KeyDatabaseOptions {
  /** A Postgres URL, usually `process.env.DATABASE_URL`. Default: none, the embedded database. */
  databaseUrl?: string;
  /** Data directory of the embedded database. Default `.keygate/pglite`. */
  dataDir?: string;
  /** Apply the shipped migrations before returning. Default `true`. */
  migrate?: boolean;
}

/** Postgres when a URL is given, the embedded database otherwise: the zero-configuration entry. */
export function openKeyDatabase(options: KeyDatabaseOptions = {}): Promise<KeyDatabase> {
  const { databaseUrl, dataDir, migrate: runMigrations = true } = options;
  return databaseUrl
    ? connectPostgres({ url: databaseUrl, migrate: runMigrations })
    : openEmbedded({ dataDir, migrate: runMigrations });
}

function handle(
  kind: KeyDatabase['kind'],
  db: KeygateDatabase,
  close: () => Promise<void>,
  options: PostgresStoreOptions,
): KeyDatabase {
  const store = new PostgresKeyStore(db, options);
  return { kind, db, store, auditSink: store.auditSink, close };
}

function once(close: () => Promise<void>): () => Promise<void> {
  let closing: Promise<void> | undefined;
  return () => {
    closing ??= close();
    return closing;
  };
}
