import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { VerificationCache } from './cache.js';
import type { ApiKeyRecord } from './types.js';

function record(id: string): ApiKeyRecord {
  const at = new Date('2026-01-01T00:00:00Z');
  return {
    id,
    name: id,
    ownerId: 'org_1',
    type: 'secret',
    environment: 'live',
    digest: `digest-of-${id}`,
    digestVersion: 0,
    prefix: 'sk_live_',
    start: 'sk_live_abcdef',
    scopes: ['read:data'],
    resources: null,
    restrictions: null,
    rateLimit: null,
    metadata: null,
    expiresAt: null,
    createdAt: at,
    updatedAt: at,
    revokedAt: null,
    previousDigest: null,
    previousDigestExpiresAt: null,
  };
}

function deferred<T>() {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

const down = () => Promise.reject(new Error('store down'));

describe('VerificationCache', () => {
  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(new Date('2026-03-10T12:00:00Z'));
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  const lookup = (
    cache: VerificationCache<ApiKeyRecord>,
    digest: string,
    load: (digest: string) => Promise<ApiKeyRecord | null>,
  ) => cache.lookup(digest, load, Date.now());

  it('fresh() answers a hit without a promise and a miss or stale entry with undefined', async () => {
    const cache = new VerificationCache<ApiKeyRecord>({ ttlMs: 1_000, negativeTtlMs: 500 });
    const key = record('key_1');
    expect(cache.fresh('d1', Date.now())).toBeUndefined();
    await lookup(cache, 'd1', async () => key);
    await lookup(cache, 'nope', async () => null);
    expect(cache.fresh('d1', Date.now())).toBe(key);
    expect(cache.fresh('nope', Date.now())).toBeNull();
    expect(cache.fresh('nope', Date.now() + 500)).toBeUndefined();
    expect(cache.fresh('d1', Date.now() + 1_000)).toBeUndefined();
  });

  it('serves a fresh entry without calling the loader, and reloads after the TTL', async () => {
    const cache = new VerificationCache<ApiKeyRecord>({ ttlMs: 1_000 });
    const key = record('key_1');
    const load = vi.fn(async () => key);
    expect(await lookup(cache, 'd1', load)).toEqual(key);
    vi.advanceTimersByTime(999);
    expect(await lookup(cache, 'd1', load)).toEqual(key);
    expect(load).toHaveBeenCalledTimes(1);
    vi.advanceTimersByTime(1);
    await lookup(cache, 'd1', load);
    expect(load).toHaveBeenCalledTimes(2);
    expect(load).toHaveBeenCalledWith('d1');
  });

  it('remembers an unknown digest for negativeTtlMs', async () => {
    const cache = new VerificationCache<ApiKeyRecord>({ ttlMs: 60_000, negativeTtlMs: 500 });
    const load = vi.fn(async () => null);
    expect(await lookup(cache, 'nope', load)).toBeNull();
    vi.advanceTimersByTime(499);
    expect(await lookup(cache, 'nope', load)).toBeNull();
    expect(load).toHaveBeenCalledTimes(1);
    vi.advanceTimersByTime(1);
    expect(await lookup(cache, 'nope', load)).toBeNull();
    expect(load).toHaveBeenCalledTimes(2);
  });

  it('concurrent misses for one digest share one loader call', async () => {
    const cache = new VerificationCache<ApiKeyRecord>();
    const pending = deferred<ApiKeyRecord | null>();
    const load = vi.fn(() => pending.promise);
    const lookups = Array.from({ length: 5 }, () => lookup(cache, 'd1', load));
    expect(load).toHaveBeenCalledTimes(1);
    pending.resolve(record('key_1'));
    const results = await Promise.all(lookups);
    expect(results.map((r) => r?.id)).toEqual(['key_1', 'key_1', 'key_1', 'key_1', 'key_1']);
    expect(await lookup(cache, 'd1', load)).toMatchObject({ id: 'key_1' });
    expect(load).toHaveBeenCalledTimes(1);
  });

  it('concurrent misses all see the loader failure', async () => {
    const cache = new VerificationCache<ApiKeyRecord>();
    const pending = deferred<ApiKeyRecord | null>();
    const load = vi.fn(() => pending.promise);
    const lookups = [lookup(cache, 'd1', load), lookup(cache, 'd1', load)];
    pending.reject(new Error('store down'));
    for (const result of await Promise.allSettled(lookups)) {
      expect(result.status).toBe('rejected');
    }
    expect(load).toHaveBeenCalledTimes(1);
  });

  it('serves a known key stale while the loader fails, up to staleIfErrorMs past its TTL', async () => {
    const cache = new VerificationCache<ApiKeyRecord>({ ttlMs: 1_000, staleIfErrorMs: 5_000 });
    await lookup(cache, 'd1', async () => record('key_1'));
    vi.advanceTimersByTime(2_000);
    expect(await lookup(cache, 'd1', down)).toMatchObject({ id: 'key_1' });
    vi.advanceTimersByTime(3_999);
    expect(await lookup(cache, 'd1', down)).toMatchObject({ id: 'key_1' });
    vi.advanceTimersByTime(1);
    await expect(lookup(cache, 'd1', down)).rejects.toThrow('store down');
  });

  it('does not invent a stale answer for an unknown digest', async () => {
    const cache = new VerificationCache<ApiKeyRecord>({ ttlMs: 1_000, negativeTtlMs: 1_000 });
    await expect(lookup(cache, 'never-seen', down)).rejects.toThrow('store down');
    await lookup(cache, 'unknown', async () => null);
    vi.advanceTimersByTime(1_000);
    await expect(lookup(cache, 'unknown', down)).rejects.toThrow('store down');
  });

  it('a fresh answer after an outage replaces the stale one', async () => {
    const cache = new VerificationCache<ApiKeyRecord>({ ttlMs: 1_000, staleIfErrorMs: 5_000 });
    await lookup(cache, 'd1', async () => record('key_1'));
    vi.advanceTimersByTime(2_000);
    await lookup(cache, 'd1', down);
    const revoked = { ...record('key_1'), revokedAt: new Date() };
    expect(await lookup(cache, 'd1', async () => revoked)).toMatchObject({
      revokedAt: expect.any(Date),
    });
    const load = vi.fn(down);
    expect(await lookup(cache, 'd1', load)).toMatchObject({ revokedAt: expect.any(Date) });
    expect(load).not.toHaveBeenCalled();
  });

  it('holds at most maxEntries digests, evicting the least recently used', async () => {
    const cache = new VerificationCache<ApiKeyRecord>({ maxEntries: 2 });
    const load = vi.fn(async (digest: string) => record(`key_${digest}`));
    await lookup(cache, 'a', load);
    await lookup(cache, 'b', load);
    await lookup(cache, 'a', load);
    await lookup(cache, 'c', load);
    expect(cache.size).toBe(2);
    expect(load).toHaveBeenCalledTimes(3);
    await lookup(cache, 'a', load);
    expect(load).toHaveBeenCalledTimes(3);
    await lookup(cache, 'b', load);
    expect(load).toHaveBeenCalledTimes(4);
    expect(load).toHaveBeenLastCalledWith('b');
    expect(cache.size).toBe(2);
  });

  it('moves a busy digest to the front at most once a second, and again after that', async () => {
    const cache = new VerificationCache<ApiKeyRecord>({ maxEntries: 2 });
    const load = vi.fn(async (digest: string) => record(`key_${digest}`));
    await lookup(cache, 'a', load);
    await lookup(cache, 'b', load);
    await lookup(cache, 'a', load); // a's first hit: a is now the most recent
    await lookup(cache, 'b', load); // b's first hit: b is now the most recent
    vi.advanceTimersByTime(500);
    await lookup(cache, 'a', load); // within a second of a's last move: its place is kept
    await lookup(cache, 'c', load); // evicts the least recent, which is still a
    expect(load.mock.calls.map(([digest]) => digest)).toEqual(['a', 'b', 'c']);
    expect(cache.fresh('a', Date.now())).toBeUndefined();
    expect(cache.fresh('b', Date.now())?.id).toBe('key_b');

    vi.advanceTimersByTime(1_000);
    expect(cache.fresh('b', Date.now())?.id).toBe('key_b'); // a second later: b moves to the front
    await lookup(cache, 'd', load); // so c, not b, is evicted
    expect(cache.fresh('b', Date.now())?.id).toBe('key_b');
    expect(cache.fresh('c', Date.now())).toBeUndefined();
  });
  it('invalidateKey forgets every digest of that key, and only that key', async () => {
    const cache = new VerificationCache<ApiKeyRecord>();
    const key = record('key_1');
    await lookup(cache, 'current', async () => key);
    await lookup(cache, 'previous', async () => key);
    await lookup(cache, 'other', async () => record('key_2'));
    cache.invalidateKey('key_1');
    expect(cache.size).toBe(1);
    const load = vi.fn(async () => null);
    expect(await lookup(cache, 'current', load)).toBeNull();
    expect(await lookup(cache, 'previous', load)).toBeNull();
    expect(await lookup(cache, 'other', load)).toMatchObject({ id: 'key_2' });
    expect(load).toHaveBeenCalledTimes(2);
  });

  it('invalidateDigest forgets a digest remembered as unknown', async () => {
    const cache = new VerificationCache<ApiKeyRecord>();
    await lookup(cache, 'new-key', async () => null);
    cache.invalidateDigest('new-key');
    expect(await lookup(cache, 'new-key', async () => record('key_9'))).toMatchObject({
      id: 'key_9',
    });
  });

  it('clear forgets everything', async () => {
    const cache = new VerificationCache<ApiKeyRecord>();
    await lookup(cache, 'a', async () => record('key_a'));
    await lookup(cache, 'b', async () => null);
    cache.clear();
    expect(cache.size).toBe(0);
    const load = vi.fn(async () => null);
    await lookup(cache, 'a', load);
    await lookup(cache, 'b', load);
    expect(load).toHaveBeenCalledTimes(2);
  });

  it('a load that started before an invalidation is not cached after it', async () => {
    const cache = new VerificationCache<ApiKeyRecord>();
    const before = deferred<ApiKeyRecord | null>();
    const inflight = lookup(cache, 'd1', () => before.promise);
    // The key is revoked while the store read that started earlier is still on its way.
    cache.invalidateKey('key_1');
    const revoked = { ...record('key_1'), revokedAt: new Date() };
    const afterRevoke = lookup(cache, 'd1', async () => revoked);
    before.resolve(record('key_1'));
    expect(await inflight).toMatchObject({ revokedAt: null });
    expect(await afterRevoke).toMatchObject({ revokedAt: expect.any(Date) });
    const load = vi.fn(async () => revoked);
    expect(await lookup(cache, 'd1', load)).toMatchObject({ revokedAt: expect.any(Date) });
  });

  it('a miss in flight when a key is created does not hide the new key', async () => {
    const cache = new VerificationCache<ApiKeyRecord>();
    const before = deferred<ApiKeyRecord | null>();
    const inflight = lookup(cache, 'd-new', () => before.promise);
    cache.invalidateDigest('d-new');
    before.resolve(null);
    expect(await inflight).toBeNull();
    expect(await lookup(cache, 'd-new', async () => record('key_new'))).toMatchObject({
      id: 'key_new',
    });
  });

  it('does not serve an invalidated entry stale when the store fails during the reload', async () => {
    const cache = new VerificationCache<ApiKeyRecord>({ ttlMs: 1_000, staleIfErrorMs: 60_000 });
    await lookup(cache, 'd1', async () => record('key_1'));
    vi.advanceTimersByTime(2_000);
    const failing = deferred<ApiKeyRecord | null>();
    const reload = lookup(cache, 'd1', () => failing.promise);
    cache.invalidateKey('key_1');
    failing.reject(new Error('store down'));
    await expect(reload).rejects.toThrow('store down');
  });
});

describe('VerificationCache while the invalidation bus is down', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('trusts an entry for busDownTtlMs only, then asks the store; trusts the TTL again once the bus is back', async () => {
    const cache = new VerificationCache<ApiKeyRecord>({ ttlMs: 30_000, busDownTtlMs: 1_000 });
    await cache.lookup('d1', async () => record('key_1'), Date.now());
    cache.setInvalidationsHeard(false);
    vi.advanceTimersByTime(999);
    expect(cache.fresh('d1', Date.now())).toMatchObject({ id: 'key_1' });
    vi.advanceTimersByTime(1);
    expect(cache.fresh('d1', Date.now())).toBeUndefined();
    cache.setInvalidationsHeard(true);
    expect(cache.fresh('d1', Date.now())).toMatchObject({ id: 'key_1' });
  });

  it('stale() answers an expired known key within staleIfErrorMs, and nothing for an unknown one', async () => {
    const cache = new VerificationCache<ApiKeyRecord>({ ttlMs: 1_000, staleIfErrorMs: 5_000 });
    await cache.lookup('d1', async () => record('key_1'), Date.now());
    await cache.lookup('unknown', async () => null, Date.now());
    vi.advanceTimersByTime(2_000);
    expect(cache.stale('d1', Date.now())).toMatchObject({ id: 'key_1' });
    expect(cache.stale('unknown', Date.now())).toBeUndefined();
    cache.invalidateKey('key_1');
    expect(cache.stale('d1', Date.now())).toBeUndefined();
  });
});
