import type {
  ApiKeyRecord,
  AuditEvent,
  KeyPatch,
  KeyRotation,
  KeyStore,
  LeakChange,
  LeakReportRecord,
  ListKeysQuery,
  NewKeyRecord,
} from '@keygate/core';
import DataLoader from 'dataloader';
import { and, desc, eq, getTableColumns, isNull, sql } from 'drizzle-orm';
import { alias } from 'drizzle-orm/pg-core';
import type { Sql } from 'postgres';
import { insertAuditEvents, PostgresAuditSink } from './audit-sink.js';
import type { KeygateDatabase } from './database.js';
import { apiKeys, leakReports } from './schema.js';
import { PostgresSessionStore } from './session-store.js';
import { attempt, DEFAULT_CALL_TIMEOUT_MS, type PostgresStoreOptions } from './store-error.js';
import { enqueueWebhookEvents } from './webhook-outbox.js';

const DEFAULT_PAGE_SIZE = 100;
const MAX_PAGE_SIZE = 1000;

export interface PostgresKeyStoreOptions extends PostgresStoreOptions {
  /**
   * The postgres.js client under `db`, when it parses types as by default (no `transform`, no
   * `types`; drizzle's own change to its date parsing is expected): the request path's one lookup
   * then reads its row straight into a key, without drizzle's row mapping. `connectPostgres` passes it (unless it was given a `logger`, which sees
   * drizzle's statements only). Default: none, drizzle's prepared query.
   */
  postgresJs?: Sql;
}

/** Every column of a key, named as `ApiKeyRecord` names it: a postgres.js row is then the record. */
const KEY_COLUMNS = Object.entries(getTableColumns(apiKeys))
  .map(([field, column]) => `"${column.name}" as "${field}"`)
  .join(', ');

/**
 * A postgres.js row as a key: its timestamps come as text when drizzle shares the client (drizzle
 * turns postgres.js's date parsing off, to parse them itself).
 */
function withDates(row: ApiKeyRecord): ApiKeyRecord {
  row.createdAt = toDate(row.createdAt)!;
  row.updatedAt = toDate(row.updatedAt)!;
  row.expiresAt = toDate(row.expiresAt);
  row.revokedAt = toDate(row.revokedAt);
  row.previousDigestExpiresAt = toDate(row.previousDigestExpiresAt);
  return row;
}

function toDate(value: Date | string | null): Date | null {
  return value === null || value instanceof Date ? value : new Date(value);
}

/**
 * Keys by their digests, or by their previous digests during a rotation's grace period: two plain
 * index scans of every digest asked (`digest = any($1) or previous_digest = any($1)` would combine
 * both indexes in a bitmap on every lookup).
 */
const FIND_BY_DIGESTS = `select ${KEY_COLUMNS} from keygate_api_keys where digest = any($1)
  union all select ${KEY_COLUMNS} from keygate_api_keys where previous_digest = any($1)`;

/** Most digests one cold-path query asks for. */
const MAX_BATCH = 128;

/** Each digest's key, found by its digest first, else by its previous digest. */
function matchDigests(digests: readonly string[], rows: ApiKeyRecord[]): (ApiKeyRecord | null)[] {
  const found = new Map<string, ApiKeyRecord>();
  for (const row of rows) if (!found.has(row.digest)) found.set(row.digest, withDates(row));
  for (const row of rows) {
    const previous = row.previousDigest;
    if (previous !== null && !found.has(previous)) found.set(previous, withDates(row));
  }
  return digests.map((digest) => found.get(digest) ?? null);
}

/**
 * Keys in Postgres (server or PGlite) through drizzle. Every call is one statement (a key change
 * with its audit event, one transaction), so the store is safe to share between instances; it
 * never closes the database it was given.
 */
export class PostgresKeyStore implements KeyStore {
  /**
   * The audit trail in this store's database. Listed in `auditSinks`, it makes every key change
   * write its audit event in the change's own transaction: both are stored, or neither.
   */
  readonly auditSink: PostgresAuditSink;
  /** The key-management page's sessions, in this store's database next to the keys. */
  readonly sessions: PostgresSessionStore;
  readonly #db: KeygateDatabase;
  readonly #timeoutMs: number;
  /** The cold path's one query, prepared once: drizzle's query builder costs more than the lookup. */
  readonly #lookUp: (digest: string) => Promise<ApiKeyRecord | null>;

  constructor(db: KeygateDatabase, options: PostgresKeyStoreOptions = {}) {
    this.#db = db;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
    this.auditSink = new PostgresAuditSink(db, options);
    this.sessions = new PostgresSessionStore(db, options);
    const client = options.postgresJs;
    if (client) {
      // The digests asked for while the event loop polled (the requests that arrived together)
      // go as one query: under load, a cold lookup then costs a fraction of a round trip.
      // DataLoader batches; its cache stays off (the verification cache is keygate's own).
      const loader = new DataLoader<string, ApiKeyRecord | null>(
        (digests) =>
          attempt('findByDigest', this.#timeoutMs, () =>
            client
              .unsafe<ApiKeyRecord[]>(FIND_BY_DIGESTS, [digests as string[]], { prepare: true })
              .then((rows) => matchDigests(digests, rows)),
          ),
        { cache: false, maxBatchSize: MAX_BATCH, batchScheduleFn: (run) => setImmediate(run) },
      );
      this.#lookUp = (digest) => loader.load(digest);
    } else {
      const digest = sql.placeholder('digest');
      const prepared = db
        .select()
        .from(apiKeys)
        .where(eq(apiKeys.digest, digest))
        .unionAll(db.select().from(apiKeys).where(eq(apiKeys.previousDigest, digest)))
        .limit(1)
        .prepare('keygate_find_by_digest');
      this.#lookUp = (value) =>
        attempt('findByDigest', this.#timeoutMs, () =>
          prepared.execute({ digest: value }).then((rows) => rows[0] ?? null),
        );
    }
  }

  findByDigest(digest: string): Promise<ApiKeyRecord | null> {
    return this.#lookUp(digest);
  }

  async create(key: NewKeyRecord, event?: AuditEvent): Promise<ApiKeyRecord> {
    const created = await this.#change('create', event, async (db) => {
      const [row] = await db
        .insert(apiKeys)
        .values({
          id: key.id,
          name: key.name,
          ownerId: key.ownerId,
          type: key.type,
          environment: key.environment,
          digest: key.digest,
          digestVersion: key.digestVersion,
          prefix: key.prefix,
          start: key.start,
          scopes: key.scopes,
          resources: key.resources,
          restrictions: key.restrictions,
          rateLimit: key.rateLimit,
          metadata: key.metadata,
          expiresAt: key.expiresAt,
        })
        .returning();
      return row;
    });
    return created!;
  }

  digestVersions(): Promise<number[]> {
    return attempt('digestVersions', this.#timeoutMs, async () => {
      const rows = await this.#db.selectDistinct({ version: apiKeys.digestVersion }).from(apiKeys);
      return rows.map((row) => row.version);
    });
  }

  get(id: string): Promise<ApiKeyRecord | null> {
    return attempt('get', this.#timeoutMs, async () => {
      const [row] = await this.#db.select().from(apiKeys).where(eq(apiKeys.id, id)).limit(1);
      return row ?? null;
    });
  }

  list(query: ListKeysQuery): Promise<ApiKeyRecord[]> {
    return attempt('list', this.#timeoutMs, () => {
      // A cursor that names no key matches nothing, as in the in-memory store; nor does another
      // owner's key, whose position would tell when it was created.
      const cursor = alias(apiKeys, 'cursor');
      const after =
        query.after === undefined
          ? undefined
          : sql`(${apiKeys.createdAt}, ${apiKeys.id}) < (${this.#db
              .select({ createdAt: cursor.createdAt, id: cursor.id })
              .from(cursor)
              .where(
                and(
                  eq(cursor.id, query.after),
                  query.ownerId === undefined ? undefined : eq(cursor.ownerId, query.ownerId),
                ),
              )})`;
      return this.#db
        .select()
        .from(apiKeys)
        .where(
          and(
            query.ownerId === undefined ? undefined : eq(apiKeys.ownerId, query.ownerId),
            query.includeRevoked ? undefined : isNull(apiKeys.revokedAt),
            after,
          ),
        )
        .orderBy(desc(apiKeys.createdAt), desc(apiKeys.id))
        .limit(pageSize(query.limit));
    });
  }

  update(id: string, patch: KeyPatch, event?: AuditEvent): Promise<ApiKeyRecord | null> {
    // Named one by one so that nothing outside `KeyPatch` (a digest, an owner) can be changed here.
    const { name, scopes, resources, restrictions, rateLimit, metadata, expiresAt } = patch;
    return this.#change('update', event, async (db) => {
      const [row] = await db
        .update(apiKeys)
        .set({
          name,
          scopes,
          resources,
          restrictions,
          rateLimit,
          metadata,
          expiresAt,
          updatedAt: sql`now()`,
        })
        .where(eq(apiKeys.id, id))
        .returning();
      return row;
    });
  }

  rotate(id: string, rotation: KeyRotation, event?: AuditEvent): Promise<ApiKeyRecord | null> {
    const graceUntil =
      rotation.previousDigestExpiresAt !== null && rotation.previousDigestExpiresAt > new Date()
        ? rotation.previousDigestExpiresAt
        : null;
    return this.#change('rotate', event, async (db) => {
      const [row] = await db
        .update(apiKeys)
        .set({
          // SET reads the row as it was before the update: this keeps the outgoing digest.
          previousDigest: graceUntil ? apiKeys.digest : null,
          previousDigestExpiresAt: graceUntil,
          digest: rotation.digest,
          digestVersion: rotation.digestVersion,
          start: rotation.start,
          updatedAt: sql`now()`,
        })
        .where(eq(apiKeys.id, id))
        .returning();
      return row;
    });
  }

  revoke(id: string, at: Date, event?: AuditEvent): Promise<ApiKeyRecord | null> {
    return this.#change('revoke', event, async (db) => {
      const [row] = await db
        .update(apiKeys)
        .set({
          // Revocation is irreversible: a second revoke keeps the first time.
          revokedAt: sql`coalesce(${apiKeys.revokedAt}, ${at.toISOString()}::timestamptz)`,
          updatedAt: at,
        })
        .where(eq(apiKeys.id, id))
        .returning();
      return row;
    });
  }

  /**
   * Records a leak report in one transaction: the key's row locked, the report's place inserted
   * (a repeat changes nothing), then the key's leak state, its revocation, the audit events and
   * their webhook events, all or nothing.
   */
  recordLeak(
    report: LeakReportRecord,
    contain: (current: ApiKeyRecord) => LeakChange,
    writeEvents: boolean,
  ): Promise<{ record: ApiKeyRecord; change: LeakChange | null } | null> {
    return attempt('record leak', this.#timeoutMs, () =>
      this.#db.transaction(async (tx) => {
        const [current] = await tx
          .select()
          .from(apiKeys)
          .where(eq(apiKeys.id, report.keyId))
          .for('update');
        if (!current) return null;
        const inserted = await tx
          .insert(leakReports)
          .values({
            keyId: report.keyId,
            fingerprint: report.fingerprint,
            url: report.url,
            source: report.source,
            reportedAt: report.at,
          })
          .onConflictDoNothing()
          .returning({ keyId: leakReports.keyId });
        if (inserted.length === 0) return { record: current, change: null };
        const change = contain(current);
        const [record] = await tx
          .update(apiKeys)
          .set({
            leak: change.leak,
            ...(change.revoke
              ? {
                  revokedAt: sql`coalesce(${apiKeys.revokedAt}, ${report.at.toISOString()}::timestamptz)`,
                }
              : {}),
            updatedAt: report.at,
          })
          .where(eq(apiKeys.id, report.keyId))
          .returning();
        if (writeEvents) {
          await insertAuditEvents(tx, change.events);
          await enqueueWebhookEvents(tx, change.events);
        }
        return { record: record!, change };
      }),
    );
  }

  /** Runs one key change; with an audit event, both in one transaction. */
  #change(
    operation: string,
    event: AuditEvent | undefined,
    change: (db: KeygateDatabase) => Promise<ApiKeyRecord | undefined>,
  ): Promise<ApiKeyRecord | null> {
    return attempt(operation, this.#timeoutMs, async () => {
      if (!event) return (await change(this.#db)) ?? null;
      return this.#db.transaction(async (tx) => {
        const row = await change(tx);
        // A key that does not exist was not changed: there is nothing to record.
        if (row) {
          await insertAuditEvents(tx, [event]);
          await enqueueWebhookEvents(tx, [event]);
        }
        return row ?? null;
      });
    });
  }
}

function pageSize(limit: number | undefined): number {
  if (limit === undefined || !Number.isFinite(limit)) return DEFAULT_PAGE_SIZE;
  return Math.min(Math.max(Math.trunc(limit), 0), MAX_PAGE_SIZE);
}
