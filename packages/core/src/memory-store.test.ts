import { describe, expect, it } from 'vitest';
import { MemoryKeyStore } from './memory-store.js';
import type { NewKeyRecord } from './types.js';

function newKey(id: string, ownerId = 'org_a'): NewKeyRecord {
  return {
    id,
    name: id,
    ownerId,
    type: 'secret',
    environment: 'live',
    digest: `digest-${id}`,
    digestVersion: 0,
    prefix: 'sk_live_',
    start: 'sk_live_abcdef',
    scopes: ['read:data'],
    resources: null,
    restrictions: null,
    rateLimit: null,
    metadata: null,
    expiresAt: null,
  };
}

async function storeWith(ids: string[]): Promise<MemoryKeyStore> {
  const store = new MemoryKeyStore();
  for (const id of ids) {
    await store.create(newKey(id));
    // Distinct creation times, so the order is by time and not only by id.
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  return store;
}

describe('MemoryKeyStore.list', () => {
  it('pages on after the cursor key even when that key was revoked since', async () => {
    const store = await storeWith(['k1', 'k2', 'k3', 'k4']);
    const first = await store.list({ limit: 2 });
    expect(first.map((k) => k.id)).toEqual(['k4', 'k3']);
    await store.revoke('k3', new Date());
    const second = await store.list({ limit: 2, after: 'k3' });
    expect(second.map((k) => k.id)).toEqual(['k2', 'k1']);
  });

  it("takes another owner's key for no cursor, as an unknown id", async () => {
    const store = await storeWith(['k1', 'k2']);
    await store.create(newKey('other', 'org_b'));
    expect(await store.list({ ownerId: 'org_a', after: 'other' })).toEqual([]);
    expect(await store.list({ ownerId: 'org_a', after: 'missing' })).toEqual([]);
    expect((await store.list({ after: 'other' })).map((k) => k.id)).toEqual(['k2', 'k1']);
  });

  it('answers an empty page for an unknown cursor', async () => {
    const store = await storeWith(['k1']);
    expect(await store.list({ after: 'missing' })).toEqual([]);
  });
});

describe('MemoryKeyStore.update', () => {
  it('leaves fields given as undefined untouched and ignores fields outside a patch', async () => {
    const store = await storeWith(['k1']);
    const patch = { name: 'renamed', scopes: undefined, ownerId: 'org_evil' };
    const updated = await store.update('k1', patch as never);
    expect(updated?.name).toBe('renamed');
    expect(updated?.scopes).toEqual(['read:data']);
    expect(updated?.ownerId).toBe('org_a');
  });
});
