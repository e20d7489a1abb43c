import type { PageSessionRecord, SessionStore } from './types.js';

/**
 * Page sessions in process memory, next to a `MemoryKeyStore`'s keys (its `sessions`): for
 * tests, demos and single-process apps. Bounded as every session store is: `maxPerKey` per key,
 * and sessions no longer active are deleted when they are asked for or purged.
 */
export class MemorySessionStore implements SessionStore {
  readonly #sessions = new Map<string, PageSessionRecord>();
  /** Each key's sessions' token hashes, oldest first. */
  readonly #byKey = new Map<string, string[]>();

  get size(): number {
    return this.#sessions.size;
  }

  async create(session: PageSessionRecord, maxPerKey: number): Promise<void> {
    this.#sessions.set(session.tokenHash, { ...session });
    const hashes = this.#byKey.get(session.keyId) ?? [];
    hashes.push(session.tokenHash);
    for (const oldest of hashes.splice(0, Math.max(0, hashes.length - maxPerKey))) {
      this.#sessions.delete(oldest);
    }
    this.#byKey.set(session.keyId, hashes);
  }

  async get(tokenHash: string, now: Date): Promise<PageSessionRecord | null> {
    const session = this.#sessions.get(tokenHash);
    if (!session) return null;
    if (session.activeUntil <= now) {
      this.#remove(session);
      return null;
    }
    return { ...session };
  }

  async touch(tokenHash: string, activeUntil: Date): Promise<void> {
    const session = this.#sessions.get(tokenHash);
    if (session) {
      session.activeUntil = activeUntil < session.expiresAt ? activeUntil : session.expiresAt;
    }
  }

  async delete(tokenHash: string): Promise<PageSessionRecord | null> {
    const session = this.#sessions.get(tokenHash);
    if (!session) return null;
    this.#remove(session);
    return session;
  }

  async purge(now: Date, limit: number): Promise<number> {
    const ended: PageSessionRecord[] = [];
    for (const session of this.#sessions.values()) {
      if (ended.length >= limit) break;
      if (session.activeUntil <= now) ended.push(session);
    }
    for (const session of ended) this.#remove(session);
    return ended.length;
  }

  #remove(session: PageSessionRecord): void {
    this.#sessions.delete(session.tokenHash);
    const hashes = this.#byKey.get(session.keyId);
    if (!hashes) return;
    const remaining = hashes.filter((hash) => hash !== session.tokenHash);
    if (remaining.length > 0) this.#byKey.set(session.keyId, remaining);
    else this.#byKey.delete(session.keyId);
  }
}
