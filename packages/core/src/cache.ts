import { LRUCache } from 'lru-cache';

export interface VerificationCacheOptions {
  /** Most digests remembered (known and unknown together). Default 10,000. */
  maxEntries?: number;
  /** How long a known key is served without asking the store, in ms. Default 30,000. */
  ttlMs?: number;
  /** How long an unknown digest is remembered as unknown, in ms. Default 10,000. */
  negativeTtlMs?: number;
  /** How long past its TTL a known key may still be served while the store is failing, in ms. Default 300,000. */
  staleIfErrorMs?: number;
  /**
   * How long a cached answer is trusted while the invalidation bus is down (changes made on other
   * instances may be missed), in ms: older ones are checked with the store again. Default 1,000.
   */
  busDownTtlMs?: number;
}

interface Entry<T> {
  record: T | null;
  freshUntil: number;
  staleUntil: number;
  /** When the store gave it. */
  loadedAt: number;
  /** When a hit last moved the entry to the front of the LRU order. */
  usedAt: number;
}

/**
 * A hit moves its entry to the front of the LRU order at most once in this long: on a busy key
 * that move (a linked-list update in `lru-cache`) cost more than the rest of the look-up.
 */
const RECENCY_MS = 1_000;

/**
 * Bounded LRU of verified digests in front of any store, so a request with a
 * known key costs no database round trip. Concurrent misses for one digest share
 * one store call. It holds what the store gave for each digest (a key, or `null` for none):
 * anything with the key's `id`, by which it is invalidated.
 */
export class VerificationCache<T extends { readonly id: string }> {
  // lru-cache, not a Map in insertion order: evicting a Map's oldest entry walks past every entry
  // deleted before it, about 5 µs a miss at 10,000 entries, where lru-cache's lists cost O(1).
  readonly #entries: LRUCache<string, Entry<T>>;
  readonly #inflight = new Map<string, Promise<T | null>>();
  readonly #ttl: number;
  readonly #negativeTtl: number;
  readonly #staleIfError: number;
  readonly #busDownTtl: number;
  /** How long an entry is trusted since it was loaded, whatever its TTL: finite while the invalidation bus is down. */
  #trustMs = Number.POSITIVE_INFINITY;
  /** Bumped by every invalidation, so a store read that began before one is neither cached nor shared after it. */
  #generation = 0;

  constructor(options: VerificationCacheOptions = {}) {
    this.#entries = new LRUCache({ max: options.maxEntries ?? 10_000 });
    this.#ttl = options.ttlMs ?? 30_000;
    this.#negativeTtl = options.negativeTtlMs ?? 10_000;
    this.#staleIfError = options.staleIfErrorMs ?? 300_000;
    this.#busDownTtl = options.busDownTtlMs ?? 1_000;
  }

  /** How long past its TTL a known key may be served while the store is failing, in ms. */
  get staleIfErrorMs(): number {
    return this.#staleIfError;
  }

  /** How long an answer is trusted while the invalidation bus is down, in ms. */
  get busDownTtlMs(): number {
    return this.#busDownTtl;
  }

  /**
   * The invalidation bus is down (`false`) or back (`true`): while it is down, changes made on
   * other instances may not be heard of, so no answer older than `busDownTtlMs` is served fresh.
   */
  setInvalidationsHeard(heard: boolean): void {
    this.#trustMs = heard ? Number.POSITIVE_INFINITY : this.#busDownTtl;
  }

  get size(): number {
    return this.#entries.size;
  }

  /**
   * What the cache holds for `digest` while it is fresh (a key, or `null` for a digest known to
   * match none), `undefined` otherwise: a hit costs no promise.
   */
  fresh(digest: string, nowMs: number): T | null | undefined {
    const entry = this.#entries.peek(digest);
    if (
      entry === undefined ||
      entry.freshUntil <= nowMs ||
      nowMs - entry.loadedAt >= this.#trustMs
    ) {
      return undefined;
    }
    if (nowMs - entry.usedAt >= RECENCY_MS) {
      entry.usedAt = nowMs;
      this.#entries.get(digest);
    }
    return entry.record;
  }

  /**
   * A known key's entry for `digest` past its TTL but within `staleIfErrorMs`, for when the store
   * is known to be down: `undefined` when there is none.
   */
  stale(digest: string, nowMs: number): T | undefined {
    const entry = this.#entries.peek(digest);
    return entry?.record && entry.staleUntil > nowMs ? entry.record : undefined;
  }

  /** The record for `digest`: from the cache while fresh, else from `load` (falling back to a stale entry if it throws). */
  lookup(
    digest: string,
    load: (digest: string) => Promise<T | null>,
    nowMs: number,
  ): Promise<T | null> {
    const hit = this.fresh(digest, nowMs);
    if (hit !== undefined) return Promise.resolve(hit);
    const pending = this.#inflight.get(digest);
    if (pending) return pending;
    const entry = this.#entries.peek(digest);
    const generation = this.#generation;
    // Settled in its own callbacks (no async wrapper around it: a miss costs one promise fewer).
    const request: Promise<T | null> = load(digest).then(
      (record) => {
        this.#settled(digest, request);
        if (generation === this.#generation) this.#remember(digest, record, Date.now());
        return record;
      },
      (error: unknown) => {
        this.#settled(digest, request);
        const current = generation === this.#generation;
        if (current && entry?.record && entry.staleUntil > Date.now()) return entry.record;
        throw error;
      },
    );
    this.#inflight.set(digest, request);
    return request;
  }

  /** A load is over: later lookups of its digest no longer share it. */
  #settled(digest: string, request: Promise<T | null>): void {
    if (this.#inflight.get(digest) === request) this.#inflight.delete(digest);
  }

  #remember(digest: string, record: T | null, nowMs: number): void {
    const ttl = record ? this.#ttl : this.#negativeTtl;
    this.#entries.set(digest, {
      record,
      freshUntil: nowMs + ttl,
      staleUntil: record ? nowMs + ttl + this.#staleIfError : nowMs + ttl,
      loadedAt: nowMs,
      usedAt: Number.NEGATIVE_INFINITY,
    });
  }

  /** Forget every digest of a key (after revoke, rotate or update, here or on another instance). */
  invalidateKey(keyId: string): void {
    this.#forgetInflight();
    const digests: string[] = [];
    for (const [digest, entry] of this.#entries.entries()) {
      if (entry.record?.id === keyId) digests.push(digest);
    }
    for (const digest of digests) this.#entries.delete(digest);
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
