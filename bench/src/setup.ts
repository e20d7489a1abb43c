import { writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { createKeyFormat, createKeyHasher } from '@keygate/core';
import { connectPostgres, type KeygateDatabase } from '@keygate/postgres';
import { getMigrations } from 'better-auth/db/migration';
import { sql } from 'drizzle-orm';
import { Redis } from 'ioredis';
import postgres from 'postgres';
import type { LoadPhase } from './measure.js';
import { createBenchAuth, readPermission } from './peers/better-auth.js';
import {
  HAND_ROLLED_REDIS_PREFIX,
  HAND_ROLLED_RLF_PREFIX,
  HAND_ROLLED_SCHEMA,
  HAND_ROLLED_TABLE,
} from './peers/hand-rolled.js';
import { BENCH_REDIS_NAMESPACE } from './servers/keygate-runtime.js';

/** Every benchmark key may read `website:w_1`, the resource each request names. */
const KEY_SCOPES = ['read:data'];
const KEY_RESOURCES = ['website:w_1'];

/** `base` (a server URL) pointing at database `name`. */
export function databaseUrl(base: string, name: string): string {
  const url = new URL(base);
  url.pathname = `/${name}`;
  return url.toString();
}

/** Drops (disconnecting any session) and creates `name` on the server at `base`. */
export async function recreateDatabase(base: string, name: string): Promise<string> {
  const admin = postgres(databaseUrl(base, 'postgres'), { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`drop database if exists "${name}" with (force)`);
    await admin.unsafe(`create database "${name}"`);
  } finally {
    await admin.end({ timeout: 5 });
  }
  return databaseUrl(base, name);
}

export async function dropDatabase(base: string, name: string): Promise<void> {
  const admin = postgres(databaseUrl(base, 'postgres'), { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`drop database if exists "${name}" with (force)`);
  } finally {
    await admin.end({ timeout: 5 });
  }
}

/** The database server's and Redis's versions, for the report. */
export async function serviceVersions(
  pgUrl: string,
  redisUrl: string,
): Promise<{ postgres: string; redis: string }> {
  const client = postgres(databaseUrl(pgUrl, 'postgres'), { max: 1, connect_timeout: 5 });
  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    const [row] = await client<[{ server_version: string }]>`show server_version`;
    await redis.connect();
    const info = await redis.info('server');
    return {
      postgres: row.server_version,
      redis: /redis_version:(\S+)/.exec(info)?.[1] ?? 'unknown',
    };
  } finally {
    await client.end({ timeout: 5 });
    redis.disconnect();
  }
}

/** Deletes what the benchmark put in Redis (its own prefixes only; the server may be shared). */
export async function clearBenchRedis(redisUrl: string): Promise<number> {
  const redis = new Redis(redisUrl);
  let deleted = 0;
  try {
    for (const pattern of [
      `${BENCH_REDIS_NAMESPACE}:*`,
      `${HAND_ROLLED_REDIS_PREFIX}*`,
      `${HAND_ROLLED_RLF_PREFIX}:*`,
    ]) {
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
        cursor = next;
        if (keys.length > 0) deleted += await redis.del(...keys);
      } while (cursor !== '0');
    }
  } finally {
    redis.disconnect();
  }
  return deleted;
}

function writeKeys(file: string, keys: readonly string[]): string {
  writeFileSync(file, `${keys.join('\n')}\n`);
  return file;
}

/**
 * Inserts `count` keygate keys on Postgres or the embedded database, 10,000 per statement (one
 * JSON parameter each). Secrets come from keygate's key format and digests from its hasher, so the
 * keys verify exactly like keys made with `keygate.keys.create` (which costs a round trip each).
 */
export async function insertKeygateKeys(
  db: KeygateDatabase,
  count: number,
  idPrefix: string,
  keysFile: string,
): Promise<string> {
  const format = createKeyFormat();
  const hasher = createKeyHasher();
  const secrets: string[] = [];
  for (let from = 0; from < count; from += 10_000) {
    const rows: Array<{ id: string; digest: string; start: string }> = [];
    for (let i = from; i < Math.min(count, from + 10_000); i++) {
      const key = format.generate('secret', 'live');
      secrets.push(key.secret);
      rows.push({ id: `${idPrefix}${i}`, digest: hasher.digest(key.secret), start: key.start });
    }
    await db.execute(sql`
      insert into keygate_api_keys
        (id, name, owner_id, type, environment, digest, digest_version, prefix, start, scopes, resources)
      select id, id, 'org_default', 'secret', 'live', digest, ${hasher.version}, 'sk_live_', start,
        ${`{${KEY_SCOPES.join(',')}}`}::text[], ${JSON.stringify(KEY_RESOURCES)}::jsonb
      from jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) as t(id text, digest text, start text)`);
  }
  return writeKeys(keysFile, secrets);
}

/** The hand-rolled stack's table and keys (SHA-256 digests of keygate-format secrets). */
export async function provisionHandRolled(
  url: string,
  count: number,
  keysFile: string,
  idPrefix = 'hr_',
): Promise<string> {
  const format = createKeyFormat();
  const hasher = createKeyHasher();
  const client = postgres(url, { max: 1, onnotice: () => {} });
  try {
    await client.unsafe(HAND_ROLLED_SCHEMA);
    const secrets = Array.from({ length: count }, () => format.generate('secret', 'live').secret);
    await client`
      insert into ${client(HAND_ROLLED_TABLE)} (id, digest, owner_id, scopes, resources)
      select ${idPrefix} || n, digest, 'org_default', ${KEY_SCOPES}::text[], ${KEY_RESOURCES}::text[]
      from unnest(${secrets.map((s) => hasher.digest(s))}::text[]) with ordinality as t(digest, n)`;
    return writeKeys(keysFile, secrets);
  } finally {
    await client.end({ timeout: 5 });
  }
}

/** better-auth's tables (its own migrator), one user, and `count` API keys with the read permission. */
export async function provisionBetterAuth(
  url: string,
  count: number,
  keysFile: string,
): Promise<string> {
  const { auth, pool } = createBenchAuth(url);
  try {
    const { runMigrations } = await getMigrations(auth.options);
    await runMigrations();
    const { user } = await auth.api.signUpEmail({
      body: { email: 'bench@example.com', password: 'bench-password-0123', name: 'Bench' },
    });
    const keys: string[] = [];
    // A few at a time: each creation is a few statements on the pool.
    for (let from = 0; from < count; from += 10) {
      const batch = Array.from({ length: Math.min(10, count - from) }, (_, i) =>
        auth.api.createApiKey({
          body: { userId: user.id, name: `bench-${from + i}`, permissions: readPermission('w_1') },
        }),
      );
      for (const created of await Promise.all(batch)) keys.push(created.key);
    }
    return writeKeys(keysFile, keys);
  } finally {
    await pool.end();
  }
}

export interface LookupTiming {
  keys: number;
  samples: number;
  p50: number;
  p99: number;
  mean: number;
}

/**
 * `store.findByDigest` latency (ms) on random existing digests as the table grows: rows of random
 * digests are added with `INSERT ... SELECT generate_series` up to each size in `sizes`.
 */
export async function lookupScaling(
  url: string,
  sizes: readonly number[],
  samples: number,
): Promise<LookupTiming[]> {
  const database = await connectPostgres({ url, migrate: true });
  const client = postgres(url, { max: 1, onnotice: () => {} });
  const timings: LookupTiming[] = [];
  try {
    let rows = 0;
    for (const size of sizes) {
      for (let from = rows + 1; from <= size; from += 100_000) {
        const to = Math.min(size, from + 99_999);
        await client`
          insert into keygate_api_keys (id, name, owner_id, type, environment, digest, prefix, start, scopes, resources)
          select 'key_lookup_' || i, 'lookup ' || i, 'org_' || (i % 1000), 'secret', 'live',
            encode(sha256(convert_to('bench ' || i || ' ' || random(), 'UTF8')), 'hex'),
            'sk_live_', 'sk_live_' || substr(md5(i::text), 1, 6), array['read:data'], '["website:w_1"]'::jsonb
          from generate_series(${from}::int, ${to}::int) as i`;
      }
      rows = size;
      await client`analyze keygate_api_keys`;
      const picked = await client<Array<{ digest: string }>>`
        select digest from keygate_api_keys order by random() limit ${samples + 200}`;
      const digests = picked.map((row) => row.digest);
      // The first lookups warm the connection pool and prepare the statement.
      for (const digest of digests.slice(0, 200)) await database.store.findByDigest(digest);
      const times: number[] = [];
      for (const digest of digests.slice(200)) {
        const started = performance.now();
        const found = await database.store.findByDigest(digest);
        times.push(performance.now() - started);
        if (!found) throw new Error(`lookup of an inserted digest found nothing (${size} keys)`);
      }
      times.sort((a, b) => a - b);
      timings.push({
        keys: size,
        samples: times.length,
        p50: times[Math.floor(times.length * 0.5)]!,
        p99: times[Math.min(times.length - 1, Math.floor(times.length * 0.99))]!,
        mean: times.reduce((sum, t) => sum + t, 0) / times.length,
      });
    }
  } finally {
    await client.end({ timeout: 5 });
    await database.close();
  }
  return timings;
}

export interface BackendCounters {
  /** Commands Redis has run, those a script runs included (all clients, but our own `INFO`). */
  redisCommands: number;
  /** Rows inserted, updated or deleted in the bench database's tables. */
  postgresRowsWritten: number;
}

/**
 * Reads Redis's `INFO commandstats` and Postgres's `pg_stat_user_tables` of the bench database,
 * so a run can report what each request cost the shared backends.
 */
export async function openBackendCounters(
  pgUrl: string,
  redisUrl: string,
): Promise<{
  read(): Promise<BackendCounters>;
  /** Reads once the counters of a server that just stopped are in (Postgres publishes a closed session's counts at its exit). */
  settled(): Promise<BackendCounters>;
  close(): Promise<void>;
}> {
  const client = postgres(pgUrl, { max: 1, onnotice: () => {} });
  const redis = new Redis(redisUrl);
  const read = async (): Promise<BackendCounters> => {
    const [row] = await client<[{ written: string }]>`
      select coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0)::text as written
      from pg_stat_user_tables`;
    let redisCommands = 0;
    for (const line of (await redis.info('commandstats')).split('\n')) {
      const match = /^cmdstat_([^:]+):calls=(\d+)/.exec(line);
      if (match && match[1] !== 'info') redisCommands += Number(match[2]);
    }
    return { redisCommands, postgresRowsWritten: Number(row.written) };
  };
  return {
    read,
    async settled() {
      let last = await read();
      // Until two reads half a second apart agree.
      for (let i = 0; i < 10; i++) {
        await new Promise((resolve) => setTimeout(resolve, 500));
        const now = await read();
        if (now.postgresRowsWritten === last.postgresRowsWritten) return now;
        last = now;
      }
      return last;
    },
    async close() {
      await client.end({ timeout: 5 });
      redis.disconnect();
    },
  };
}

/**
 * Commands clients sent to Redis database `db` during a measured run, per request measured: what
 * `MONITOR` shows between the two calls `during` makes to `mark` (the start and the end of its
 * measured run, after priming and warm-up), leaving out the commands scripts run (source `lua`).
 * `INFO commandstats` counts those too, so it cannot tell one round trip running a script from
 * several. `during` resolves to the requests of its measured run.
 */
export async function redisRoundTripsPerRequest(
  redisUrl: string,
  during: (mark: (phase: LoadPhase) => void) => Promise<number>,
): Promise<number> {
  const db = new URL(redisUrl).pathname.slice(1) || '0';
  const monitor = new Redis(redisUrl, { monitor: true, retryStrategy: () => null });
  // On a busy Redis, monitor lines can arrive before ioredis has put the connection in monitor
  // mode, and it reports each as a reply nobody asked for: they precede the count, so let them be.
  monitor.on('error', () => {});
  let sent = 0;
  const at: Partial<Record<LoadPhase, number>> = {};
  try {
    await new Promise<void>((resolve, reject) => {
      monitor.once('monitoring', () => resolve());
      monitor.once('end', () => reject(new Error(`could not MONITOR Redis at ${redisUrl}`)));
    });
    monitor.on('monitor', (_time: string, _args: string[], source: string, database: string) => {
      if (database === db && source !== 'lua') sent++;
    });
    const requests = await during((phase) => {
      at[phase] = sent;
    });
    return ((at['measure-end'] ?? Number.NaN) - (at['measure-start'] ?? Number.NaN)) / requests;
  } finally {
    monitor.disconnect();
  }
}
