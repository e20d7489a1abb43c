import type { PageSessionRecord, SessionStore } from '@keygate/core';
import { and, desc, eq, getTableColumns, gt, inArray, lte, sql } from 'drizzle-orm';
import type { KeygateDatabase } from './database.js';
import { pageSessions } from './schema.js';
import { attempt, DEFAULT_CALL_TIMEOUT_MS, type PostgresStoreOptions } from './store-error.js';

const COLUMNS = getTableColumns(pageSessions);

/**
 * The key-management page's sessions in Postgres (server or PGlite), in `keygate_page_sessions`:
 * every instance on the database shares them, so a sign-out or a sign-in reaches all at once.
 * `PostgresKeyStore.sessions` is one on the store's database.
 */
export class PostgresSessionStore implements SessionStore {
  readonly #db: KeygateDatabase;
  readonly #timeoutMs: number;

  constructor(db: KeygateDatabase, options: PostgresStoreOptions = {}) {
    this.#db = db;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
  }

  create(session: PageSessionRecord, maxPerKey: number): Promise<void> {
    return attempt('createSession', this.#timeoutMs, () =>
      this.#db.transaction(async (tx) => {
        // One sign-in of a key at a time, so two at once cannot both keep a place past the cap.
        await tx.execute(
          sql`select pg_advisory_xact_lock(hashtext(${`keygate:sessions:${session.keyId}`}))`,
        );
        await tx.insert(pageSessions).values(session);
        const beyondCap = tx
          .select({ tokenHash: pageSessions.tokenHash })
          .from(pageSessions)
          .where(eq(pageSessions.keyId, session.keyId))
          .orderBy(desc(pageSessions.createdAt), desc(pageSessions.tokenHash))
          .offset(maxPerKey);
        await tx
          .delete(pageSessions)
          .where(
            and(eq(pageSessions.keyId, session.keyId), inArray(pageSessions.tokenHash, beyondCap)),
          );
      }),
    );
  }

  get(tokenHash: string, now: Date): Promise<PageSessionRecord | null> {
    return attempt('getSession', this.#timeoutMs, async () => {
      const [row] = await this.#db
        .select(COLUMNS)
        .from(pageSessions)
        .where(and(eq(pageSessions.tokenHash, tokenHash), gt(pageSessions.activeUntil, now)))
        .limit(1);
      return row ?? null;
    });
  }

  touch(tokenHash: string, activeUntil: Date): Promise<void> {
    return attempt('touchSession', this.#timeoutMs, async () => {
      await this.#db
        .update(pageSessions)
        .set({
          activeUntil: sql`least(${pageSessions.expiresAt}, ${activeUntil.toISOString()}::timestamptz)`,
        })
        .where(eq(pageSessions.tokenHash, tokenHash));
    });
  }

  delete(tokenHash: string): Promise<PageSessionRecord | null> {
    return attempt('deleteSession', this.#timeoutMs, async () => {
      const [row] = await this.#db
        .delete(pageSessions)
        .where(eq(pageSessions.tokenHash, tokenHash))
        .returning();
      return row ?? null;
    });
  }

  purge(now: Date, limit: number): Promise<number> {
    return attempt('purgeSessions', this.#timeoutMs, async () => {
      const ended = this.#db
        .select({ tokenHash: pageSessions.tokenHash })
        .from(pageSessions)
        .where(lte(pageSessions.activeUntil, now))
        .limit(limit);
      const purged = await this.#db
        .delete(pageSessions)
        .where(inArray(pageSessions.tokenHash, ended))
        .returning({ tokenHash: pageSessions.tokenHash });
      return purged.length;
    });
  }
}
