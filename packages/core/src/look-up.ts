import type { BlockList } from 'node:net';
import type { VerificationCache } from './cache.js';
import type { Circuit } from './circuit.js';
import type { KeyHasher } from './key-format.js';
import { keyDetails } from './keys.js';
import { compileQuarantine } from './quarantine.js';
import { policiesFor, type RateLimitTiers, rateLimitPolicyHeader } from './rate-limit.js';
import { compileRestrictions, type RestrictionRules } from './restrictions.js';
import type { ApiKeyRecord, KeyStore, Principal, RateLimitPolicy } from './types.js';

/**
 * A stored key with what every request made with it needs, built once when it is read from the
 * store and cached with it: a request with a known key copies nothing and compiles nothing.
 */
export interface KnownKey {
  readonly id: string;
  readonly record: ApiKeyRecord;
  readonly principal: Extract<Principal, { kind: 'key' }>;
  /** Its rate limits: its tier, field by field overridden by its own. */
  readonly policies: readonly RateLimitPolicy[];
  /** Its `RateLimit-Policy` header, which only its policies decide. */
  readonly policyHeader: string;
  readonly restrictions: RestrictionRules | null;
  /** Under a leak's quarantine: the addresses it still works from. */
  readonly quarantine: BlockList | null;
}

/** What a secret was found as: the key (or none), and the digest it was found by. */
export interface KeyMatch {
  known: KnownKey | null;
  digest: string;
}

export interface KeyLookupDeps {
  store: KeyStore;
  /** The store's circuit breaker: while it is open, stale entries answer at once, and the others fail at once. */
  circuit?: Pick<Circuit, 'isOpen' | 'unavailable'>;
  cache: VerificationCache<KnownKey> | null;
  hasher: KeyHasher;
  tiers: RateLimitTiers;
}

/** The policies and their header, of keys without limits of their own: one of each per key type. */
type SharedLimits = Map<ApiKeyRecord['type'], { policies: RateLimitPolicy[]; header: string }>;

function limitsOf(record: ApiKeyRecord, tiers: RateLimitTiers, shared?: SharedLimits) {
  const own = record.rateLimit;
  const shareable = shared && (own === null || Object.keys(own).length === 0);
  const known = shareable ? shared.get(record.type) : undefined;
  if (known) return known;
  const policies = policiesFor(tiers[record.type], own);
  const limits = { policies, header: rateLimitPolicyHeader(policies) };
  if (shareable) shared.set(record.type, limits);
  return limits;
}

/**
 * What every request with `record` needs, built once. `shared` holds the limits of keys without
 * their own, so that most keys share one policies array (and the limiter what it derives from it).
 */
export function knownKey(
  record: ApiKeyRecord,
  tiers: RateLimitTiers,
  shared?: SharedLimits,
): KnownKey {
  const { policies, header } = limitsOf(record, tiers, shared);
  const quarantine = compileQuarantine(record.leak);
  return {
    id: record.id,
    record,
    principal: {
      kind: 'key',
      id: record.id,
      ownerId: record.ownerId,
      // A quarantined key keeps its read scopes only.
      scopes: quarantine ? record.leak!.quarantine!.scopes : record.scopes,
      resources: record.resources,
      type: record.type,
      environment: record.environment,
      key: keyDetails(record),
    },
    policies,
    policyHeader: header,
    restrictions: compileRestrictions(record.restrictions),
    quarantine,
  };
}

/**
 * The key whose current or previous digest is `digest`, from the cache while it is fresh, else
 * from the store: how a page session, which holds the digest its key was signed in with, finds
 * that key's current record. Cached entries are dropped when the key changes on any instance.
 */
export function createDigestLookup(
  deps: KeyLookupDeps,
): (digest: string) => Promise<KnownKey | null> {
  const { store, cache, tiers } = deps;
  const shared: SharedLimits = new Map();
  const load = (digest: string): Promise<KnownKey | null> =>
    store.findByDigest(digest).then((record) => (record ? knownKey(record, tiers, shared) : null));
  return (digest) => (cache ? cache.lookup(digest, load, Date.now()) : load(digest));
}

/**
 * The look-up step: the key a secret belongs to, by its digest, from the cache or else the store;
 * with a pepper, also by its unpeppered digest while the store holds keys made before the pepper.
 * A fresh cache entry answers at once, without a promise; the store's answer comes as one, which
 * rejects when the store cannot answer (and no stale entry can).
 */
export function createKeyLookup(
  deps: KeyLookupDeps,
): (secret: string) => KeyMatch | Promise<KeyMatch> {
  const { store, cache, hasher, circuit } = deps;
  const find = createDigestLookup(deps);

  // Whether the store holds keys made before a pepper was configured (asked once).
  let legacyHeld: Promise<boolean> | undefined;
  const storeHoldsLegacyKeys = (): Promise<boolean> => {
    legacyHeld ??= (store.digestVersions?.() ?? Promise.resolve([0])).then(
      (versions) => versions.includes(0),
      () => {
        legacyHeld = undefined;
        return true;
      },
    );
    return legacyHeld;
  };

  const withLegacy = async (secret: string, digest: string): Promise<KeyMatch> => {
    const legacy = hasher.legacy?.digest(secret);
    if (legacy === undefined || !(await storeHoldsLegacyKeys())) return { known: null, digest };
    return { known: await find(legacy), digest: legacy };
  };
  const miss = (secret: string, digest: string, hit: null | undefined): Promise<KeyMatch> =>
    (hit === null ? Promise.resolve(null) : find(digest)).then((known) =>
      known || !hasher.legacy ? { known, digest } : withLegacy(secret, digest),
    );

  // The store is known to be down: answered in memory, without a promise or a store call.
  const whileDown = (secret: string, digest: string, nowMs: number): KeyMatch => {
    const stale = cache?.stale(digest, nowMs);
    if (stale) return { known: stale, digest };
    const legacy = hasher.legacy?.digest(secret);
    const staleLegacy = legacy === undefined ? undefined : cache?.stale(legacy, nowMs);
    if (staleLegacy && legacy !== undefined) return { known: staleLegacy, digest: legacy };
    throw circuit!.unavailable();
  };

  return function lookUp(secret) {
    const digest = hasher.digest(secret);
    const now = Date.now();
    const hit = cache?.fresh(digest, now);
    if (hit) return { known: hit, digest };
    if (hit === undefined && circuit?.isOpen) return whileDown(secret, digest, now);
    return miss(secret, digest, hit);
  };
}
