import { MemorySessionStore } from './memory-session-store.js';
import type {
  ApiKeyRecord,
  KeyPatch,
  KeyRotation,
  KeyStore,
  LeakChange,
  LeakReportRecord,
  ListKeysQuery,
  NewKeyRecord,
} from './types.js';

/** Keys in process memory: for tests, demos and single-process apps that provision keys at start. */
export class MemoryKeyStore implements KeyStore {
  /** The key-management page's sessions, in memory with the keys. */
  readonly sessions = new MemorySessionStore();
  readonly #byId = new Map<string, ApiKeyRecord>();
  readonly #byDigest = new Map<string, string>();
  /** Leak reports already recorded, as key id and fingerprint. */
  readonly #leakReports = new Set<string>();

  async findByDigest(digest: string): Promise<ApiKeyRecord | null> {
    const id = this.#byDigest.get(digest);
    return id ? clone(this.#byId.get(id)!) : null;
  }

  async create(key: NewKeyRecord): Promise<ApiKeyRecord> {
    if (this.#byId.has(key.id) || this.#byDigest.has(key.digest)) {
      throw new Error(`key ${key.id} already exists`);
    }
    const now = new Date();
    const record: ApiKeyRecord = {
      ...clone(key as ApiKeyRecord),
      createdAt: now,
      updatedAt: now,
      revokedAt: null,
      previousDigest: null,
      previousDigestExpiresAt: null,
      leak: null,
    };
    this.#byId.set(record.id, record);
    this.#byDigest.set(record.digest, record.id);
    return clone(record);
  }

  async digestVersions(): Promise<number[]> {
    return [...new Set([...this.#byId.values()].map((r) => r.digestVersion))];
  }

  async get(id: string): Promise<ApiKeyRecord | null> {
    const record = this.#byId.get(id);
    return record ? clone(record) : null;
  }

  async list(query: ListKeysQuery): Promise<ApiKeyRecord[]> {
    let records = [...this.#byId.values()].sort(newestFirst);
    // The cursor is a position: a page goes on after it even if that key was revoked since.
    const cursor = query.after === undefined ? undefined : this.#byId.get(query.after);
    if (query.after !== undefined) {
      // Another owner's key is no cursor: its position would tell when it was created.
      const usable = cursor && (query.ownerId === undefined || cursor.ownerId === query.ownerId);
      records = usable ? records.filter((r) => newestFirst(cursor, r) < 0) : [];
    }
    return records
      .filter((r) => query.ownerId === undefined || r.ownerId === query.ownerId)
      .filter((r) => query.includeRevoked || r.revokedAt === null)
      .slice(0, query.limit ?? 100)
      .map(clone);
  }

  async update(id: string, patch: KeyPatch): Promise<ApiKeyRecord | null> {
    const record = this.#byId.get(id);
    if (!record) return null;
    for (const field of PATCHABLE) {
      if (patch[field] !== undefined) Object.assign(record, { [field]: clone(patch[field]) });
    }
    record.updatedAt = new Date();
    return clone(record);
  }

  async rotate(id: string, rotation: KeyRotation): Promise<ApiKeyRecord | null> {
    const record = this.#byId.get(id);
    if (!record) return null;
    if (record.previousDigest) this.#byDigest.delete(record.previousDigest);
    const graceful =
      rotation.previousDigestExpiresAt !== null && rotation.previousDigestExpiresAt > new Date();
    if (graceful) {
      record.previousDigest = record.digest;
      record.previousDigestExpiresAt = rotation.previousDigestExpiresAt;
    } else {
      this.#byDigest.delete(record.digest);
      record.previousDigest = null;
      record.previousDigestExpiresAt = null;
    }
    record.digest = rotation.digest;
    record.digestVersion = rotation.digestVersion;
    record.start = rotation.start;
    record.updatedAt = new Date();
    this.#byDigest.set(rotation.digest, id);
    return clone(record);
  }

  async revoke(id: string, at: Date): Promise<ApiKeyRecord | null> {
    const record = this.#byId.get(id);
    if (!record) return null;
    record.revokedAt ??= at;
    record.updatedAt = at;
    return clone(record);
  }

  async recordLeak(
    report: LeakReportRecord,
    contain: (current: ApiKeyRecord) => LeakChange,
  ): Promise<{ record: ApiKeyRecord; change: LeakChange | null } | null> {
    const record = this.#byId.get(report.keyId);
    if (!record) return null;
    const seen = `${report.keyId}\0${report.fingerprint}`;
    if (this.#leakReports.has(seen)) return { record: clone(record), change: null };
    this.#leakReports.add(seen);
    const change = contain(clone(record));
    record.leak = clone(change.leak);
    if (change.revoke) record.revokedAt ??= report.at;
    record.updatedAt = report.at;
    return { record: clone(record), change };
  }
}

const PATCHABLE = [
  'name',
  'scopes',
  'resources',
  'restrictions',
  'rateLimit',
  'metadata',
  'expiresAt',
] as const satisfies ReadonlyArray<keyof KeyPatch>;

function newestFirst(a: ApiKeyRecord, b: ApiKeyRecord): number {
  return b.createdAt.getTime() - a.createdAt.getTime() || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0);
}

function clone<T>(value: T): T {
  return structuredClone(value);
}
