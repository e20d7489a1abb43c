import { describe, expect, it, vi } from 'vitest';
import { VerificationCache } from './cache.js';
import { createKeyFormat, createKeyHasher } from './key-format.js';
import { createKeyLookup, type KeyMatch, type KnownKey, knownKey } from './look-up.js';
import { MemoryKeyStore } from './memory-store.js';
import { DEFAULT_TIERS } from './rate-limit.js';
import type { NewKeyRecord } from './types.js';

const format = createKeyFormat();

function newKey(digest: string, overrides: Partial<NewKeyRecord> = {}): NewKeyRecord {
  return {
    id: `key_${digest.slice(0, 8)}`,
    name: 'k',
    ownerId: 'org_1',
    type: 'secret',
    environment: 'live',
    digest,
    digestVersion: 0,
    prefix: 'sk_live_',
    start: 'sk_live_abcdef',
    scopes: ['read:data'],
    resources: null,
    restrictions: null,
    rateLimit: null,
    metadata: null,
    expiresAt: null,
    ...overrides,
  };
}

async function resolved(match: KeyMatch | Promise<KeyMatch>): Promise<KeyMatch> {
  return match;
}

describe('knownKey', () => {
  it('builds once what every request with the key needs: principal, limits, restrictions', async () => {
    const store = new MemoryKeyStore();
    const record = await store.create(
      newKey('d'.repeat(64), {
        type: 'public',
        rateLimit: { burst: 5 },
        restrictions: { ips: ['10.0.0.0/8'] },
      }),
    );
    const known = knownKey(record, DEFAULT_TIERS);
    expect(known.principal).toMatchObject({ kind: 'key', id: record.id, type: 'public' });
    expect(known.principal.key).not.toHaveProperty('digest');
    expect(known.policies).toEqual([
      { name: 'burst', kind: 'token-bucket', capacity: 5, refillPerSecond: 100 },
      { name: 'daily', kind: 'fixed-window', limit: 1_000_000, windowSeconds: 86_400 },
    ]);
    expect(known.policyHeader).toBe('"burst";q=5;w=1, "daily";q=1000000;w=86400');
    expect(known.restrictions?.ips?.check('10.1.2.3', 'ipv4')).toBe(true);
    expect(knownKey({ ...record, restrictions: null }, DEFAULT_TIERS).restrictions).toBeNull();
  });
});

describe('knownKey: shared limits', () => {
  it('keys without limits of their own share one policies array per type; the others get theirs', async () => {
    const store = new MemoryKeyStore();
    const shared = new Map();
    const [a, b, pub, own] = await Promise.all([
      store.create(newKey('a'.repeat(64))),
      store.create(newKey('b'.repeat(64))),
      store.create(newKey('c'.repeat(64), { type: 'public' })),
      store.create(newKey('e'.repeat(64), { rateLimit: { daily: 5 } })),
    ]);
    const [ka, kb, kp, ko] = [a, b, pub, own].map((r) => knownKey(r, DEFAULT_TIERS, shared));
    expect(ka!.policies).toBe(kb!.policies);
    expect(ka!.policyHeader).toBe('"burst";q=10000;w=10, "daily";q=10000000;w=86400');
    expect(kp!.policies).not.toBe(ka!.policies);
    expect(kp!.policyHeader).toBe('"burst";q=1000;w=10, "daily";q=1000000;w=86400');
    expect(ko!.policies).not.toBe(ka!.policies);
    expect(ko!.policyHeader).toBe('"burst";q=10000;w=10, "daily";q=5;w=86400');
  });
});

describe('createKeyLookup', () => {
  it('answers a cached key at once, without a promise or a store call', async () => {
    const { secret } = format.generate('secret', 'live');
    const hasher = createKeyHasher();
    const store = new MemoryKeyStore();
    await store.create(newKey(hasher.digest(secret)));
    const find = vi.spyOn(store, 'findByDigest');
    const lookUp = createKeyLookup({
      store,
      cache: new VerificationCache<KnownKey>(),
      hasher,
      tiers: DEFAULT_TIERS,
    });
    const first = lookUp(secret);
    expect(first).toBeInstanceOf(Promise);
    const cold = await first;
    const warm = lookUp(secret);
    expect(warm).not.toBeInstanceOf(Promise);
    expect((warm as KeyMatch).known).toBe(cold.known);
    expect(find).toHaveBeenCalledTimes(1);
  });

  it('without a cache, asks the store every time; an unknown secret is no key', async () => {
    const hasher = createKeyHasher();
    const store = new MemoryKeyStore();
    const find = vi.spyOn(store, 'findByDigest');
    const lookUp = createKeyLookup({ store, cache: null, hasher, tiers: DEFAULT_TIERS });
    const { secret } = format.generate('secret', 'live');
    expect(await resolved(lookUp(secret))).toEqual({ known: null, digest: hasher.digest(secret) });
    await resolved(lookUp(secret));
    expect(find).toHaveBeenCalledTimes(2);
  });

  it('with a pepper, finds a key made before it by its plain digest, while the store holds such keys', async () => {
    const { secret } = format.generate('secret', 'live');
    const plain = createKeyHasher();
    const peppered = createKeyHasher('a-pepper-of-16-characters');
    const store = new MemoryKeyStore();
    await store.create(newKey(plain.digest(secret)));
    const lookUp = createKeyLookup({ store, cache: null, hasher: peppered, tiers: DEFAULT_TIERS });
    const match = await resolved(lookUp(secret));
    expect(match.digest).toBe(plain.digest(secret));
    expect(match.known?.record.digest).toBe(plain.digest(secret));

    // A store of peppered keys only: an unknown secret costs one lookup, not two.
    const modern = new MemoryKeyStore();
    vi.spyOn(modern, 'digestVersions').mockResolvedValue([1]);
    const find = vi.spyOn(modern, 'findByDigest');
    const modernLookUp = createKeyLookup({
      store: modern,
      cache: null,
      hasher: peppered,
      tiers: DEFAULT_TIERS,
    });
    expect((await resolved(modernLookUp(secret))).known).toBeNull();
    expect(find).toHaveBeenCalledTimes(1);
  });

  it('rejects when the store cannot answer and nothing is cached', async () => {
    const store = new MemoryKeyStore();
    vi.spyOn(store, 'findByDigest').mockRejectedValue(new Error('connection refused'));
    const lookUp = createKeyLookup({
      store,
      cache: new VerificationCache<KnownKey>(),
      hasher: createKeyHasher(),
      tiers: DEFAULT_TIERS,
    });
    await expect(resolved(lookUp(format.generate('secret', 'live').secret))).rejects.toThrow(
      'connection refused',
    );
  });
});
