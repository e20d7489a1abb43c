import {
  type AuditEvent,
  type AuditQuery,
  type AuditReader,
  type AuditSink,
  INTERVAL_MS,
  type UsageBatch,
  type UsageCounts,
  type UsageQuery,
} from '@keygate/core';
import { and, eq, gte, lt, type SQL, sql } from 'drizzle-orm';
import type { KeygateDatabase } from './database.js';
import { auditEvents, usageBatches, usageCounts } from './schema.js';
import { attempt, DEFAULT_CALL_TIMEOUT_MS, type PostgresStoreOptions } from './store-error.js';
import { enqueueWebhookEvents, makesWebhookEvents } from './webhook-outbox.js';

const DEFAULT_QUERY_LIMIT = 100;
const MAX_QUERY_LIMIT = 1000;
/** A JSON `\u0000` or `\ud800`-`\udfff` escape, not itself escaped (after an even run of backslashes). */
const UNSTORABLE = /(?<!\\)((?:\\\\)*)\\u(?:0000|d[89a-f][0-9a-f]{2})/gi;

/**
 * Postgres text cannot hold NUL: one would make the batch fail on every retry. (A lone surrogate
 * reaches the server as U+FFFD already, as the driver encodes UTF-8.)
 */
function storable(value: string | null): string | null {
  return value?.includes('\0') ? value.replaceAll('\0', '\ufffd') : value;
}

/** A JSON text jsonb accepts: no `\u0000` or lone-surrogate escape (both of which `JSON.stringify` writes). */
function storableJson(value: unknown): string | null {
  if (value === null || value === undefined) return null;
  const json = JSON.stringify(value);
  return json.includes('\\u') ? json.replace(UNSTORABLE, '$1\\ufffd') : json;
}

/** One array parameter (drizzle would otherwise spread a JS array into a list of parameters). */
function arrayParam(values: unknown[]): SQL {
  return sql`${sql.param(values)}`;
}

/**
 * Inserts events in one statement whatever their number: one array per column, unnested by the
 * server. The statement's text is the same for every batch, so the driver prepares it once; an
 * event already stored (same id) is skipped.
 */
export async function insertAuditEvents(
  db: KeygateDatabase,
  events: readonly AuditEvent[],
): Promise<void> {
  if (events.length === 0) return;
  const text = (pick: (event: AuditEvent) => string | null) =>
    arrayParam(events.map((event) => storable(pick(event))));
  // Timestamps travel as ISO text: drizzle's postgres-js driver passes Date arrays through unserialised.
  await db.execute(sql`insert into ${auditEvents} (id, at, action, outcome, reason, key_id,
      key_start, owner_id, actor, ip, user_agent, method, path, request_id, detail)
    select * from unnest(${text((e) => e.id)}::text[],
      ${arrayParam(events.map((e) => e.at.toISOString()))}::text[]::timestamptz[],
      ${text((e) => e.action)}::text[], ${text((e) => e.outcome)}::text[],
      ${text((e) => e.reason)}::text[], ${text((e) => e.keyId)}::text[],
      ${text((e) => e.keyStart)}::text[], ${text((e) => e.ownerId)}::text[],
      ${text((e) => e.actor)}::text[], ${text((e) => e.ip)}::text[],
      ${text((e) => e.userAgent)}::text[], ${text((e) => e.method)}::text[],
      ${text((e) => e.path)}::text[], ${text((e) => e.requestId)}::text[],
      ${arrayParam(events.map((e) => storableJson(e.detail)))}::jsonb[])
    on conflict (id) do nothing`);
}

/**
 * Adds a batch of usage rows in one statement, one array per column. A row already stored for the
 * same key, client, method, path and minute adds the batch's counts (so several instances and
 * several flushes in one minute add up); a batch whose id is recorded already is skipped whole, so
 * a retry after a lost reply never counts twice.
 */
export async function insertUsage(db: KeygateDatabase, batch: UsageBatch): Promise<void> {
  const { rows } = batch;
  if (rows.length === 0) return;
  const text = (pick: (row: UsageBatch['rows'][number]) => string | null) =>
    arrayParam(rows.map((row) => storable(pick(row))));
  // Times travel as epoch milliseconds: a number costs less to send than ISO text (a row a key a minute).
  const time = (pick: (row: UsageBatch['rows'][number]) => Date) =>
    arrayParam(rows.map((row) => pick(row).getTime()));
  // Rows that differ only in characters Postgres cannot store become one: grouping keeps a
  // statement from updating a row twice, which Postgres refuses.
  await db.execute(sql`with batch as (
      insert into ${usageBatches} (id) values (${batch.id}) on conflict do nothing returning id
    ), expired as (
      delete from ${usageBatches} where at < now() - interval '1 day'
    )
    insert into ${usageCounts} (key_id, minute, dimensions, key_start, owner_id, ip, user_agent,
      method, path, authenticated, scope_checks, resource_checks, first_seen, last_seen)
    select key_id, to_timestamp(minute / 1000),
      md5(jsonb_build_array(key_start, owner_id, ip, user_agent, method, path)::text),
      key_start, owner_id, ip, user_agent, method, path,
      sum(authenticated), sum(scope_checks), sum(resource_checks),
      to_timestamp(min(first_seen) / 1000), to_timestamp(max(last_seen) / 1000)
    from unnest(${text((r) => r.keyId)}::text[],
      ${time((r) => r.minute)}::float8[],
      ${text((r) => r.keyStart)}::text[], ${text((r) => r.ownerId)}::text[],
      ${text((r) => r.ip)}::text[], ${text((r) => r.userAgent)}::text[],
      ${text((r) => r.method)}::text[], ${text((r) => r.path)}::text[],
      ${arrayParam(rows.map((r) => r.authenticated))}::int[],
      ${arrayParam(rows.map((r) => r.scopeChecks))}::int[],
      ${arrayParam(rows.map((r) => r.resourceChecks))}::int[],
      ${time((r) => r.firstSeen)}::float8[],
      ${time((r) => r.lastSeen)}::float8[])
      as u(key_id, minute, key_start, owner_id, ip, user_agent, method, path, authenticated,
        scope_checks, resource_checks, first_seen, last_seen)
    where exists (select from batch)
    group by key_id, minute, key_start, owner_id, ip, user_agent, method, path
    on conflict (key_id, minute, dimensions) do update set
      authenticated = ${usageCounts.authenticated} + excluded.authenticated,
      scope_checks = ${usageCounts.scopeChecks} + excluded.scope_checks,
      resource_checks = ${usageCounts.resourceChecks} + excluded.resource_checks,
      first_seen = least(${usageCounts.firstSeen}, excluded.first_seen),
      last_seen = greatest(${usageCounts.lastSeen}, excluded.last_seen)`);
}

/** The audit trail in Postgres (server or PGlite); it never closes the database it was given. */
export class PostgresAuditSink implements AuditSink, AuditReader {
  readonly #db: KeygateDatabase;
  readonly #timeoutMs: number;

  constructor(db: KeygateDatabase, options: PostgresStoreOptions = {}) {
    this.#db = db;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
  }

  /**
   * One INSERT per batch; a batch retried after a lost reply is not written twice. Events that
   * owners hear of (a revocation, a leak, a refused rate limit) go into the webhook outbox in the
   * same transaction.
   */
  write(events: readonly AuditEvent[]): Promise<void> {
    return attempt('write audit events', this.#timeoutMs, () =>
      makesWebhookEvents(events)
        ? this.#db.transaction(async (tx) => {
            await insertAuditEvents(tx, events);
            await enqueueWebhookEvents(tx, events);
          })
        : insertAuditEvents(this.#db, events),
    );
  }

  /** The IPs a key was used from since `since`, most used first (what a quarantined key keeps). */
  clientIps(keyId: string, since: Date, limit: number): Promise<string[]> {
    return attempt('query client IPs', this.#timeoutMs, async () => {
      const rows = await this.#db
        .select({ ip: usageCounts.ip })
        .from(usageCounts)
        .where(
          and(
            eq(usageCounts.keyId, keyId),
            gte(usageCounts.minute, since),
            sql`${usageCounts.ip} is not null`,
          ),
        )
        .groupBy(usageCounts.ip)
        .orderBy(sql`sum(${usageCounts.authenticated}) desc`)
        .limit(limit);
      return rows.map((row) => row.ip!);
    });
  }

  /** One statement per batch into `keygate_usage_counts`; a batch retried after a lost reply is not counted twice. */
  writeUsage(batch: UsageBatch): Promise<void> {
    return attempt('write usage counts', this.#timeoutMs, () => insertUsage(this.#db, batch));
  }

  /** Newest first. */
  query(query: AuditQuery): Promise<AuditEvent[]> {
    return attempt('query audit events', this.#timeoutMs, () =>
      this.#db
        .select()
        .from(auditEvents)
        .where(
          and(
            query.keyId === undefined ? undefined : eq(auditEvents.keyId, query.keyId),
            query.ownerId === undefined ? undefined : eq(auditEvents.ownerId, query.ownerId),
          ),
        )
        .orderBy(newestFirst(auditEvents.at), newestFirst(auditEvents.id))
        .limit(queryLimit(query.limit)),
    );
  }

  /**
   * Each key's last use: the latest `last_seen` among its usage rows of its latest minute (two
   * probes of the primary key per key, however long its history).
   */
  lastUsed(keyIds: readonly string[]): Promise<Map<string, Date>> {
    return attempt('query last use', this.#timeoutMs, async () => {
      if (keyIds.length === 0) return new Map();
      const result = await this.#db.execute(
        sql`select ids.key_id, (select max(u.last_seen) from ${usageCounts} u
            where u.key_id = ids.key_id and u.minute = (select max(m.minute)
              from ${usageCounts} m where m.key_id = ids.key_id)) as last_seen
          from unnest(${arrayParam([...keyIds])}::text[]) as ids(key_id)`,
      );
      const latest = new Map<string, Date>();
      for (const row of rowsOf<{ key_id: string; last_seen: string | Date | null }>(result)) {
        if (row.last_seen !== null) latest.set(row.key_id, new Date(row.last_seen));
      }
      return latest;
    });
  }

  /** Served from the usage counts, failed and rate limited from the key's failure events. */
  usage(query: UsageQuery): Promise<UsageCounts[]> {
    const from = query.from.getTime();
    const seconds = INTERVAL_MS[query.interval] / 1000;
    const bucket = (time: SQL) =>
      sql<number>`floor((extract(epoch from ${time}) - ${from / 1000}) / ${seconds})::int`;
    return attempt('query usage', this.#timeoutMs, async () => {
      const [served, failures] = await Promise.all([
        this.#db
          .select({
            bucket: bucket(sql`${usageCounts.minute}`).as('bucket'),
            served: sql<number>`sum(${usageCounts.authenticated})`.mapWith(Number),
          })
          .from(usageCounts)
          .where(
            and(
              eq(usageCounts.keyId, query.keyId),
              gte(usageCounts.minute, query.from),
              lt(usageCounts.minute, query.to),
            ),
          )
          .groupBy(sql`1`),
        this.#db
          .select({
            bucket: bucket(sql`${auditEvents.at}`).as('bucket'),
            failed:
              sql<number>`count(*) filter (where ${auditEvents.reason} is distinct from 'rate_limited')`.mapWith(
                Number,
              ),
            rateLimited:
              sql<number>`count(*) filter (where ${auditEvents.reason} = 'rate_limited')`.mapWith(
                Number,
              ),
          })
          .from(auditEvents)
          .where(
            and(
              eq(auditEvents.keyId, query.keyId),
              gte(auditEvents.at, query.from),
              lt(auditEvents.at, query.to),
              eq(auditEvents.outcome, 'failure'),
            ),
          )
          .groupBy(sql`1`),
      ]);
      const buckets = new Map<number, UsageCounts>();
      const at = (index: number): UsageCounts => {
        let counts = buckets.get(index);
        if (!counts) {
          const start = new Date(from + index * seconds * 1000);
          counts = { start, served: 0, failed: 0, rateLimited: 0 };
          buckets.set(index, counts);
        }
        return counts;
      };
      for (const row of served) at(Number(row.bucket)).served = row.served;
      for (const row of failures) {
        const counts = at(Number(row.bucket));
        counts.failed = row.failed;
        counts.rateLimited = row.rateLimited;
      }
      return [...buckets.values()];
    });
  }
}

/** The rows of a raw statement: an array from postgres-js, `{ rows }` from PGlite. */
function rowsOf<T>(result: unknown): T[] {
  return Array.isArray(result) ? (result as T[]) : ((result as { rows: T[] }).rows ?? []);
}

/** Matches the `DESC NULLS LAST` indexes, so the newest events are read straight off an index. */
function newestFirst(column: typeof auditEvents.at | typeof auditEvents.id): SQL {
  return sql`${column} desc nulls last`;
}

function queryLimit(limit: number | undefined): number {
  if (limit === undefined || !Number.isFinite(limit)) return DEFAULT_QUERY_LIMIT;
  return Math.min(Math.max(Math.trunc(limit), 0), MAX_QUERY_LIMIT);
}
