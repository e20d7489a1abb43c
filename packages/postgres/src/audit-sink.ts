import type { AuditEvent, AuditQuery, AuditReader, AuditSink } from '@keygate/core';
import { and, eq, type SQL, sql } from 'drizzle-orm';
import type { KeygateDatabase } from './database.js';
import { auditEvents } from './schema.js';
import { attempt, DEFAULT_CALL_TIMEOUT_MS, type PostgresStoreOptions } from './store-error.js';

const DEFAULT_QUERY_LIMIT = 100;
const MAX_QUERY_LIMIT = 1000;
/** Postgres allows 65,535 parameters per statement; an event takes 15. */
const MAX_EVENTS_PER_INSERT = 4000;

/** The audit trail in Postgres (server or PGlite); it never closes the database it was given. */
export class PostgresAuditSink implements AuditSink, AuditReader {
  readonly #db: KeygateDatabase;
  readonly #timeoutMs: number;

  constructor(db: KeygateDatabase, options: PostgresStoreOptions = {}) {
    this.#db = db;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
  }

  /** One multi-row INSERT per batch; a batch retried after a lost reply is not written twice. */
  async write(events: readonly AuditEvent[]): Promise<void> {
    for (let offset = 0; offset < events.length; offset += MAX_EVENTS_PER_INSERT) {
      const rows = events.slice(offset, offset + MAX_EVENTS_PER_INSERT).map((event) => ({
        id: event.id,
        at: event.at,
        action: event.action,
        outcome: event.outcome,
        reason: event.reason,
        keyId: event.keyId,
        keyStart: event.keyStart,
        ownerId: event.ownerId,
        actor: event.actor,
        ip: event.ip,
        userAgent: event.userAgent,
        method: event.method,
        path: event.path,
        requestId: event.requestId,
        detail: event.detail,
      }));
      await attempt('write audit events', this.#timeoutMs, () =>
        this.#db.insert(auditEvents).values(rows).onConflictDoNothing({ target: auditEvents.id }),
      );
    }
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
