import type { AuditEvent, AuditQuery, AuditReader, AuditSink } from '@keygate/core';
import { and, eq, type SQL, sql } from 'drizzle-orm';
import type { KeygateDatabase } from './database.js';
import { auditEvents } from './schema.js';
import { attempt, DEFAULT_CALL_TIMEOUT_MS, type PostgresStoreOptions } from './store-error.js';

const DEFAULT_QUERY_LIMIT = 100;
const MAX_QUERY_LIMIT = 1000;
/** A JSON `\u0000` or `\ud800`-`\udfff` escape, not itself escaped (after an even run of backslashes). */
const UNSTORABLE = /(?<!\\)((?:\\\\)*)\\u(?:0000|d[89a-f][0-9a-f]{2})/gi;

/**
 * Inserts events in one statement whatever their number: the batch travels as a single JSON
 * parameter, which costs Node a `JSON.stringify` instead of building thousands of parameters,
 * and has no parameter limit. An event already stored (same id) is skipped.
 */
export async function insertAuditEvents(
  db: KeygateDatabase,
  events: readonly AuditEvent[],
): Promise<void> {
  if (events.length === 0) return;
  let batch = JSON.stringify(events);
  // Postgres text cannot hold NUL or a lone surrogate (the only surrogates JSON.stringify
  // escapes): either would make the batch fail on every retry.
  if (batch.includes('\\u')) batch = batch.replace(UNSTORABLE, '$1\\ufffd');
  await db.execute(sql`insert into ${auditEvents} (id, at, action, outcome, reason, key_id,
      key_start, owner_id, actor, ip, user_agent, method, path, request_id, detail)
    select id, at, action, outcome, reason, "keyId", "keyStart", "ownerId", actor, ip,
      "userAgent", method, path, "requestId", detail
    from jsonb_to_recordset(${batch}::text::jsonb) as e(id text, at timestamptz, action text,
      outcome text, reason text, "keyId" text, "keyStart" text, "ownerId" text, actor text,
      ip text, "userAgent" text, method text, path text, "requestId" text, detail jsonb)
    on conflict (id) do nothing`);
}

/** The audit trail in Postgres (server or PGlite); it never closes the database it was given. */
export class PostgresAuditSink implements AuditSink, AuditReader {
  readonly #db: KeygateDatabase;
  readonly #timeoutMs: number;

  constructor(db: KeygateDatabase, options: PostgresStoreOptions = {}) {
    this.#db = db;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
  }

  /** One INSERT per batch; a batch retried after a lost reply is not written twice. */
  write(events: readonly AuditEvent[]): Promise<void> {
    return attempt('write audit events', this.#timeoutMs, () =>
      insertAuditEvents(this.#db, events),
    );
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
}

/** Matches the `DESC NULLS LAST` indexes, so the newest events are read straight off an index. */
function newestFirst(column: typeof auditEvents.at | typeof auditEvents.id): SQL {
  return sql`${column} desc nulls last`;
}

function queryLimit(limit: number | undefined): number {
  if (limit === undefined || !Number.isFinite(limit)) return DEFAULT_QUERY_LIMIT;
  return Math.min(Math.max(Math.trunc(limit), 0), MAX_QUERY_LIMIT);
}
