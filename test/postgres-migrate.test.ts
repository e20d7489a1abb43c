import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { connectPostgres, migrate, migrationsFolder } from '@keygate/postgres';
import { readMigrationFiles } from 'drizzle-orm/migrator';
import { migrate as drizzleMigrate } from 'drizzle-orm/postgres-js/migrator';
import { afterEach, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';

const shippedMigrations = (
  JSON.parse(readFileSync(join(migrationsFolder, 'meta', '_journal.json'), 'utf8')) as {
    entries: unknown[];
  }
).entries.length;

const opened: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((resource) => resource.close()));
});

async function emptyDatabase(): Promise<TestDatabase> {
  const database = await createTestDatabase({ migrate: false });
  opened.push(database);
  return database;
}

async function tablesOf(database: TestDatabase): Promise<string[]> {
  const rows = await database.sql<{ name: string }[]>`
    select table_name as name from information_schema.tables
    where table_schema = 'public' order by table_name`;
  return rows.map((row) => row.name);
}

async function journalLength(database: TestDatabase): Promise<number> {
  const [row] = await database.sql<{ count: number }[]>`
    select count(*)::int as count from keygate_migrations`;
  return row!.count;
}

describe('migrate', () => {
  it('ships its migrations next to the module, whatever the working directory', () => {
    expect(isAbsolute(migrationsFolder)).toBe(true);
    expect(existsSync(join(migrationsFolder, '0000_init.sql'))).toBe(true);
    expect(shippedMigrations).toBeGreaterThan(0);
  });

  it('creates the tables once; later calls find nothing to do', async () => {
    const database = await emptyDatabase();
    expect(await migrate(database.db)).toEqual({ applied: shippedMigrations });
    expect(await tablesOf(database)).toEqual([
      'keygate_api_keys',
      'keygate_audit_events',
      'keygate_leak_reports',
      'keygate_migrations',
      'keygate_page_sessions',
      'keygate_usage_batches',
      'keygate_usage_counts',
      'keygate_webhook_attempts',
      'keygate_webhook_deliveries',
      'keygate_webhook_endpoints',
      'keygate_webhook_events',
      'keygate_webhook_worker',
    ]);
    expect(await migrate(database.db)).toEqual({ applied: 0 });
    expect(await migrate(database.db)).toEqual({ applied: 0 });
    expect(await journalLength(database)).toBe(shippedMigrations);
  });

  it('upgrades a database of the first release: only the newer migrations run, keys stay', async () => {
    const database = await emptyDatabase();
    const [first] = readMigrationFiles({ migrationsFolder });
    await database.sql.begin(async (tx) => {
      for (const statement of first!.sql) await tx.unsafe(statement);
      await tx`create table keygate_migrations (id serial primary key, hash text not null, created_at bigint)`;
      await tx`insert into keygate_migrations (hash, created_at) values (${first!.hash}, ${first!.folderMillis})`;
      await tx`insert into keygate_api_keys (id, name, owner_id, type, environment, digest, prefix, start)
        values ('key_old', 'old', 'org_1', 'secret', 'live', 'd1', 'sk_live_', 'sk_live_abc')`;
    });
    expect(await migrate(database.db)).toEqual({ applied: shippedMigrations - 1 });
    expect(await tablesOf(database)).toContain('keygate_usage_counts');
    const [key] = await database.sql<{ id: string }[]>`select id from keygate_api_keys`;
    expect(key?.id).toBe('key_old');
  });

  it('is safe to run from several pools at once (advisory lock)', async () => {
    const database = await emptyDatabase();
    const pools = await Promise.all([1, 2, 3].map(() => connectPostgres({ url: database.url })));
    opened.push(...pools);
    const results = await Promise.all([
      ...pools.map((pool) => migrate(pool.db)),
      migrate(pools[0]!.db),
      migrate(database.db),
    ]);
    expect(results.reduce((sum, result) => sum + result.applied, 0)).toBe(shippedMigrations);
    expect(await journalLength(database)).toBe(shippedMigrations);
  });

  it('works on a single-connection client', async () => {
    const database = await emptyDatabase();
    const single = await connectPostgres({ url: database.url, max: 1 });
    opened.push(single);
    const results = await Promise.all([migrate(single.db), migrate(single.db)]);
    expect(results.map((result) => result.applied).sort()).toEqual([0, shippedMigrations]);
  });

  it("keeps a journal in drizzle's format, so drizzle's migrator agrees on what ran", async () => {
    const journal = {
      migrationsFolder,
      migrationsTable: 'keygate_migrations',
      migrationsSchema: 'public',
    };
    const ours = await emptyDatabase();
    await migrate(ours.db);
    await drizzleMigrate(ours.db as Parameters<typeof drizzleMigrate>[0], journal);
    expect(await journalLength(ours)).toBe(shippedMigrations);

    const theirs = await emptyDatabase();
    await drizzleMigrate(theirs.db as Parameters<typeof drizzleMigrate>[0], journal);
    expect(await migrate(theirs.db)).toEqual({ applied: 0 });
  });

  it("leaves the app's own drizzle journal alone", async () => {
    const database = await emptyDatabase();
    // An app migration newer than keygate's: a shared journal would make keygate skip its own.
    await database.sql`create schema drizzle`;
    await database.sql`create table drizzle.__drizzle_migrations
      (id serial primary key, hash text not null, created_at bigint)`;
    await database.sql`insert into drizzle.__drizzle_migrations (hash, created_at)
      values ('app', ${Date.now() * 2})`;
    expect(await migrate(database.db)).toEqual({ applied: shippedMigrations });
    const [row] = await database.sql<{ count: number }[]>`
      select count(*)::int as count from drizzle.__drizzle_migrations`;
    expect(row?.count).toBe(1);
  });

  it('waits for another migrator longer than the statement timeout of key lookups', async () => {
    const database = await emptyDatabase();
    const pool = await connectPostgres({ url: database.url, statementTimeoutMs: 50 });
    opened.push(pool);
    let migrating: Promise<{ applied: number }> | undefined;
    await database.sql.begin(async (tx) => {
      await tx`select pg_advisory_xact_lock(hashtext('keygate:migrations'))`;
      migrating = migrate(pool.db);
      await new Promise((resolve) => setTimeout(resolve, 300));
    });
    expect(await migrating).toEqual({ applied: shippedMigrations });
  });
});
