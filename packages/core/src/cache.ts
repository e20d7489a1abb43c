export interface VerificationCacheOptions {
  /** Most digests remembered (known and unknown together). Default 10,000. */
  maxEntries?: number;
  /** How long a known key is served without asking the store, in ms. Default 30,000. */
  ttlMs?: number;
  /** How long an unknown digest is remembered as unknown, in ms. Default 10,000. */
  negativeTtlMs?: number;
  /** How long past its TTL a known key may still be served while the store is failing, in ms. Default 300,000. */
  staleIfErrorMs?: number;
}

interface Entry<T> {
  record: T | null;
  freshUntil: number;
  staleUntil: number;
  /** When it was last moved to the recent end, in moves (see `fresh`). */
  movedAt: number;
}

/**
 * Bounded LRU of verified digests in front of any store, so a request with a
 * known key costs no database round trip. Concurrent misses for one digest share
 * one store call. It holds what the store gave for each digest (a key, or `null` for none):
 * anything with the key's `id`, by which it is invalidated.
 */
export class VerificationCache<T extends { readonly id: string }> {
  readonly #entries = new Map<string, Entry<T>>();
  readonly #inflight = new Map<string, Promise<T | null>>();
  readonly #max: number;
  readonly #ttl: number;
  readonly #negativeTtl: number;
  readonly #staleIfError: number;
  /** Bumped by every invalidation, so a store read that began before one is neither cached nor shared after it. */
  #generation = 0;
  /** Entries moved to the recent end so far. */
  #moves = 0;

  constructor(options: VerificationCacheOptions = {}) {
    this.#max = options.maxEntries ?? 10_000;
    this.#ttl = options.ttlMs ?? 30_000;
    this.#negativeTtl = options.negativeTtlMs ?? 10_000;
    this.#staleIfError = options.staleIfErrorMs ?? 300_000;
  }

  get size(): number {
    return this.#entries.size;
  }

  /**
   * What the cache holds for `digest` while it is fresh (a key, or `null` for a digest known to
   * match none), `undefined` otherwise: a hit costs no promise.
   */
  fresh(digest: string, nowMs: number): T | null | undefined {
    const entry = this.#entries.get(digest);
    if (entry === undefined || entry.freshUntil <= nowMs) return undefined;
    // Most recently used last: the first entry is the one to evict. An entry moved to the end
    // within the last half-capacity of moves is in the recent half already and stays put: a hit
    // on a busy key costs one map lookup instead of three, for an order that is LRU to within
    // half the capacity.
    if (this.#moves - entry.movedAt >= this.#max / 2) {
      entry.movedAt = ++this.#moves;
      this.#entries.delete(digest);
      this.#entries.set(digest, entry);
    }
    return entry.record;
  }

  /** The record for `digest`: from the cache while fresh, else from `load` (falling back to a stale entry if it throws). */
  async lookup(
    digest: string,
    load: (digest: string) => Promise<T | null>,
    nowMs: number,
  ): Promise<T | null> {
    const hit = this.fresh(digest, nowMs);
    if (hit !== undefined) return hit;
    const entry = this.#entries.get(digest);
    const pending = this.#inflight.get(digest);
    if (pending) return pending;
    const generation = this.#generation;
    const request = load(digest).then(
      (record) => {
        if (generation === this.#generation) this.#remember(digest, record, Date.now());
        return record;
      },
      (error: unknown) => {
        const current = generation === this.#generation;
        if (current && entry?.record && entry.staleUntil > Date.now()) return entry.record;
        throw error;
      },
    );
    this.#inflight.set(digest, request);
    try {
      return await request;
    } finally {
      if (this.#inflight.get(digest) === request) this.#inflight.delete(digest);
    }
  }

  #remember(digest: string, record: T | null, nowMs: number): void {
    this.#entries.delete(digest);
    if (this.#entries.size >= this.#max) this.#entries.delete(this.#entries.keys().next().value!);
    const ttl = record ? this.#ttl : this.#negativeTtl;
    this.#entries.set(digest, {
      record,
      freshUntil: nowMs + ttl,
      staleUntil: record ? nowMs + ttl + this.#staleIfError : nowMs + ttl,
      movedAt: ++this.#moves,
    });
  }

  /** Forget every digest of a key (after revoke, rotate or update, here or on another instance). */
  invalidateKey(keyId: string): void {
    this.#forgetInflight();
    for (const [digest, entry] of this.#entries) {
      if (entry.record?.id === keyId) this.#entries.delete(digest);
    }
  }

  /** Forget one digest (e.g. a just-created key that was cached as unknown). */
  invalidateDigest(digest: string): void {
    this.#forgetInflight();
    this.#entries.delete(digest);
  }

  clear(): void {
    this.#forgetInflight();
    this.#entries.clear();
  }

  #forgetInflight(): void {
    this.#generation++;
    this.#inflight.clear();
  }
}
