import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { MemoryAuditSink } from './audit.js';
import { KeyManagementError } from './errors.js';
import { createKeyFormat } from './key-format.js';
import { createKeygate, type Keygate, type KeygateOptions } from './keygate.js';
import { MemoryKeyStore } from './memory-store.js';
import type { AuditEvent, KeygateRequest, KeyPatch, KeyRotation, NewKeyRecord } from './types.js';

const open: Keygate[] = [];

function setup(options: KeygateOptions = {}) {
  const store = new MemoryKeyStore();
  const keygate = createKeygate({
    store,
    authFailureLimit: false,
    logger: { warn: vi.fn(), error: vi.fn() },
    ...options,
  });
  open.push(keygate);
  return { store, keygate };
}

afterEach(async () => {
  vi.useRealTimers();
  await Promise.all(open.splice(0).map((keygate) => keygate.close()));
});

function request(key: string): KeygateRequest {
  return {
    method: 'GET',
    url: '/v1/query/websites',
    headers: new Headers({ authorization: `Bearer ${key}` }),
    ip: '203.0.113.10',
  };
}

/** Everything a store holds, revoked keys included. */
async function everything(store: MemoryKeyStore) {
  return store.list({ includeRevoked: true, limit: 10_000 });
}

async function refusal(promise: Promise<unknown>): Promise<KeyManagementError> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(KeyManagementError);
  return error as KeyManagementError;
}

async function reasonsFor(keygate: Keygate, keyId: string): Promise<Array<string | null>> {
  await keygate.audit.flush();
  const events = await keygate.auditReader!.query({ keyId, limit: 1_000 });
  return events.filter((e) => e.action === 'auth.failed').map((e) => e.reason);
}

describe('KeyService.create', () => {
  it('returns the secret once; the store keeps only its digest', async () => {
    const { store, keygate } = setup();
    const issued = await keygate.keys.create({
      name: 'Reporting',
      scopes: ['read:data'],
      metadata: { team: 'data' },
    });
    expect(createKeyFormat().parse(issued.secret)).toMatchObject({
      type: 'secret',
      environment: 'live',
    });
    expect(issued.key).toMatchObject({
      name: 'Reporting',
      ownerId: 'org_default',
      type: 'secret',
      environment: 'live',
      scopes: ['read:data'],
      resources: null,
      prefix: 'sk_live_',
      start: issued.secret.slice(0, 14),
      revokedAt: null,
      lastUsedAt: null,
      metadata: { team: 'data' },
    });
    expect(issued.key.id).toMatch(/^key_[a-z0-9]{20}$/);
    expect(issued.key).not.toHaveProperty('digest');
    expect(issued.key).not.toHaveProperty('previousDigest');

    const records = await everything(store);
    expect(records).toHaveLength(1);
    expect(records[0]!.digest).toBe(createHash('sha256').update(issued.secret).digest('hex'));
    expect(JSON.stringify(records)).not.toContain(issued.secret);
    expect(JSON.stringify(await keygate.keys.list())).not.toContain(issued.secret);
    expect(JSON.stringify(await keygate.keys.get(issued.key.id))).not.toContain(issued.secret);
    expect(JSON.stringify(await keygate.keys.list())).not.toContain(records[0]!.digest);

    await keygate.audit.flush();
    const audit = await keygate.auditReader!.query({ keyId: issued.key.id });
    expect(audit.map((e) => e.action)).toEqual(['key.created']);
    expect(JSON.stringify(audit)).not.toContain(issued.secret);
  });

  it('stores an HMAC digest when a pepper is configured', async () => {
    const { store, keygate } = setup({ pepper: 'a-server-side-pepper' });
    const issued = await keygate.keys.create({ name: 'k', scopes: ['read:data'] });
    const [record] = await everything(store);
    expect(record!.digestVersion).toBe(1);
    expect(record!.digest).not.toBe(createHash('sha256').update(issued.secret).digest('hex'));
    expect((await keygate.authenticate(request(issued.secret))).ok).toBe(true);
  });

  it('issues each kind of key with its prefix', async () => {
    const { keygate } = setup();
    const kinds = [
      ['secret', 'live', 'sk_live_'],
      ['secret', 'test', 'sk_test_'],
      ['public', 'live', 'pk_live_'],
      ['public', 'test', 'pk_test_'],
    ] as const;
    for (const [type, environment, prefix] of kinds) {
      const issued = await keygate.keys.create({
        name: 'k',
        type,
        environment,
        scopes: ['track:events'],
      });
      expect(issued.secret.startsWith(prefix)).toBe(true);
      expect(issued.key).toMatchObject({ type, environment, prefix });
    }
  });

  it('dedupes scopes and resources', async () => {
    const { keygate } = setup();
    const issued = await keygate.keys.create({
      name: 'k',
      scopes: ['read:data', 'read:data'],
      resources: ['website:w_1', 'website:w_1', 'link:*'],
    });
    expect(issued.key.scopes).toEqual(['read:data']);
    expect(issued.key.resources).toEqual(['website:w_1', 'link:*']);
  });

  it('refuses a public key with a secret-only scope', async () => {
    const { keygate, store } = setup();
    const error = await refusal(
      keygate.keys.create({
        name: 'widget',
        type: 'public',
        scopes: ['track:events', 'read:data'],
      }),
    );
    expect(error.code).toBe('INVALID_REQUEST');
    expect(error.message).toBe(
      'scopes: a public key cannot hold read:data (allowed: track:events, read:config)',
    );
    expect(await everything(store)).toHaveLength(0);
    const ok = await keygate.keys.create({
      name: 'widget',
      type: 'public',
      scopes: ['track:events', 'read:config'],
    });
    expect(ok.key.type).toBe('public');
  });

  it('honours a configured list of public-safe scopes', async () => {
    const { keygate } = setup({ publicScopes: ['read:data'] });
    await expect(
      keygate.keys.create({ name: 'w', type: 'public', scopes: ['read:data'] }),
    ).resolves.toBeDefined();
    await expect(
      keygate.keys.create({ name: 'w', type: 'public', scopes: ['track:events'] }),
    ).rejects.toThrow(/cannot hold track:events/);
  });

  it.each([
    [{ name: '', scopes: ['read:data'] }, /^name: /],
    [{ name: '   ', scopes: ['read:data'] }, /^name: /],
    [{ name: 'x'.repeat(201), scopes: ['read:data'] }, /^name: Too big/],
    [{ name: 'k' }, /^scopes: /],
    [{ name: 'k', scopes: ['Read Data'] }, /^scopes\.0: a scope is like read:data$/],
    [{ name: 'k', scopes: ['read:data', ''] }, /^scopes\.1: /],
    [
      { name: 'k', scopes: ['read:data'], resources: ['w_123'] },
      /^resources\.0: a resource is like website:w_123 or link:\*$/,
    ],
    [
      { name: 'k', scopes: ['read:data'], resources: ['website: w 1'] },
      /^resources\.0: a resource is like/,
    ],
    [
      { name: 'k', scopes: ['read:data'], expiresAt: '2001-01-01T00:00:00Z' },
      /^expiresAt: expiresAt must be in the future$/,
    ],
    [
      { name: 'k', scopes: ['read:data'], expiresAt: 'next tuesday' },
      /^expiresAt: expiresAt must be an ISO-8601 date$/,
    ],
    [
      { name: 'k', scopes: ['read:data'], restrictions: { ips: ['not-an-ip'] } },
      /^restrictions: not an IP address or CIDR range: not-an-ip$/,
    ],
    [
      { name: 'k', scopes: ['read:data'], restrictions: { endpoints: ['/v1/x'] } },
      /^restrictions: not an endpoint pattern/,
    ],
    [
      { name: 'k', scopes: ['read:data'], restrictions: { countries: ['FR'] } },
      /^restrictions: Unrecognized key: "countries"$/,
    ],
    [{ name: 'k', scopes: ['read:data'], rateLimit: { burst: 0 } }, /^rateLimit\.burst: /],
    [{ name: 'k', scopes: ['read:data'], rateLimit: { daily: 1.5 } }, /^rateLimit\.daily: /],
    [{ name: 'k', scopes: ['read:data'], type: 'admin' }, /^type: /],
    [{ name: 'k', scopes: ['read:data'], environment: 'prod' }, /^environment: /],
    [{ name: 'k', scopes: ['read:data'], admin: true }, /Unrecognized key: "admin"/],
  ])('refuses bad input %j with a readable message', async (input, message) => {
    const { keygate, store } = setup();
    const error = await refusal(keygate.keys.create(input as never));
    expect(error.code).toBe('INVALID_REQUEST');
    expect(error.message).toMatch(message);
    expect(await everything(store)).toHaveLength(0);
  });

  it('an actor creates keys for its own owner only', async () => {
    const { keygate } = setup();
    const own = await keygate.keys.create(
      { name: 'k', scopes: ['read:data'] },
      { id: 'key_admin', ownerId: 'org_a' },
    );
    expect(own.key.ownerId).toBe('org_a');
    const error = await refusal(
      keygate.keys.create(
        { name: 'k', scopes: ['read:data'], ownerId: 'org_b' },
        { id: 'key_admin', ownerId: 'org_a' },
      ),
    );
    expect(error.message).toBe('ownerId: cannot create keys for another owner');
    const cli = await keygate.keys.create(
      { name: 'k', scopes: [], ownerId: 'org_b' },
      { id: 'cli' },
    );
    expect(cli.key.ownerId).toBe('org_b');
  });

  it('uses a configured default owner', async () => {
    const { keygate } = setup({ defaultOwnerId: 'org_house' });
    expect((await keygate.keys.create({ name: 'k', scopes: [] })).key.ownerId).toBe('org_house');
  });
});

describe('KeyService: owner scoping', () => {
  it("another owner's key is not found, for every action", async () => {
    const { keygate } = setup();
    const other = await keygate.keys.create({ name: 'b', scopes: ['read:data'], ownerId: 'org_b' });
    const actor = { id: 'key_admin', ownerId: 'org_a' };
    const id = other.key.id;
    for (const attempt of [
      keygate.keys.get(id, actor),
      keygate.keys.update(id, { name: 'mine now' }, actor),
      keygate.keys.rotate(id, {}, actor),
      keygate.keys.revoke(id, actor),
    ]) {
      const error = await refusal(attempt);
      expect(error.code).toBe('NOT_FOUND');
      expect(error.message).toBe('API key not found');
    }
    expect(await keygate.keys.list({}, actor)).toEqual([]);
    expect(await keygate.keys.list({ ownerId: 'org_b' }, actor)).toEqual([]);
    const untouched = await keygate.keys.get(id);
    expect(untouched).toMatchObject({ name: 'b', revokedAt: null, start: other.key.start });
    expect((await keygate.authenticate(request(other.secret))).ok).toBe(true);
  });

  it('an unknown id is not found', async () => {
    const { keygate } = setup();
    expect((await refusal(keygate.keys.get('key_missing'))).code).toBe('NOT_FOUND');
    expect((await refusal(keygate.keys.get('x'.repeat(500)))).code).toBe('NOT_FOUND');
  });
});

describe('KeyService.update', () => {
  it('changes settings, and authentication sees them at once', async () => {
    const { keygate } = setup();
    const issued = await keygate.keys.create({ name: 'k', scopes: ['read:data'] });
    const before = await keygate.authenticate(request(issued.secret));
    expect(before.ok && before.principal.scopes).toEqual(['read:data']);

    const updated = await keygate.keys.update(issued.key.id, {
      name: 'renamed',
      scopes: ['read:data', 'write:llm', 'write:llm'],
      resources: ['website:w_1'],
    });
    expect(updated).toMatchObject({
      name: 'renamed',
      scopes: ['read:data', 'write:llm'],
      resources: ['website:w_1'],
    });
    expect(updated).not.toHaveProperty('digest');
    const after = await keygate.authenticate(request(issued.secret));
    expect(after.ok && after.principal.scopes).toEqual(['read:data', 'write:llm']);
    expect(after.ok && after.principal.resources).toEqual(['website:w_1']);

    await keygate.audit.flush();
    const events = await keygate.auditReader!.query({ keyId: issued.key.id });
    const update = events.find((e) => e.action === 'key.updated');
    expect(update?.detail).toEqual({ fields: ['name', 'scopes', 'resources'] });
  });

  it('validates like create', async () => {
    const { keygate } = setup();
    const pub = await keygate.keys.create({ name: 'p', type: 'public', scopes: ['track:events'] });
    expect(
      (await refusal(keygate.keys.update(pub.key.id, { scopes: ['manage:keys'] }))).message,
    ).toMatch(/a public key cannot hold manage:keys/);
    expect(
      (await refusal(keygate.keys.update(pub.key.id, { expiresAt: new Date(Date.now() - 1) })))
        .message,
    ).toBe('expiresAt: expiresAt must be in the future');
    expect(
      (await refusal(keygate.keys.update(pub.key.id, { ownerId: 'org_b' } as never))).message,
    ).toMatch(/Unrecognized key: "ownerId"/);
  });

  it('refuses text no database can hold, naming the field, at any depth', async () => {
    const { keygate, store } = setup();
    const issued = await keygate.keys.create({ name: 'k', scopes: ['read:data'] });
    const create = (input: Record<string, unknown>) =>
      refusal(keygate.keys.create({ name: 'k', scopes: ['read:data'], ...input } as never));
    const cases: Array<[Promise<KeyManagementError>, string]> = [
      [create({ name: 'a\u0000b' }), 'name: must not contain a control character'],
      [create({ name: 'tab\there' }), 'name: must not contain a control character'],
      [create({ name: 'x\u0085' }), 'name: must not contain a control character'],
      [create({ name: '\ud800' }), 'name: must not contain an unpaired surrogate'],
      [create({ ownerId: 'org\u0000' }), 'ownerId: must not contain a control character'],
      [
        create({ resources: ['website:w\u0000'] }),
        'resources.0: must not contain a control character',
      ],
      [
        create({ metadata: { a: { b: ['ok', 'x\udfff'] } } }),
        'metadata.a.b.1: must not contain an unpaired surrogate',
      ],
      [
        create({ metadata: { 'k\u0000': 1 } }),
        'metadata: a field name must not contain a control character',
      ],
      [
        create({ restrictions: { endpoints: ['GET /v1/\u0000'] } }),
        'restrictions.endpoints.0: must not contain a control character',
      ],
      [
        create({ expiresAt: '+275760-09-13T00:00:00.000Z' }),
        'expiresAt: expiresAt must be before the year 10000',
      ],
      [
        refusal(keygate.keys.update(issued.key.id, { metadata: { deep: '\u001b[31m' } })),
        'metadata.deep: must not contain a control character',
      ],
    ];
    for (const [error, message] of cases) {
      expect(await error).toMatchObject({ code: 'INVALID_REQUEST', message });
    }
    let deep: unknown = 'x';
    for (let i = 0; i < 40; i++) deep = { deep };
    expect((await create({ metadata: deep as Record<string, unknown> })).message).toMatch(
      /must not be nested more than 32 levels$/,
    );
    expect(await everything(store)).toHaveLength(1);
    // Ordinary non-ASCII text is welcome.
    const named = await keygate.keys.create({
      name: 'Clé 🔑 日本',
      scopes: [],
      metadata: { ü: 'ß' },
    });
    expect(named.key.name).toBe('Clé 🔑 日本');
  });

  it('refuses to update a revoked key', async () => {
    const { keygate } = setup();
    const issued = await keygate.keys.create({ name: 'k', scopes: ['read:data'] });
    await keygate.keys.revoke(issued.key.id);
    const error = await refusal(keygate.keys.update(issued.key.id, { name: 'zombie' }));
    expect(error).toMatchObject({ code: 'INVALID_REQUEST', message: 'the key is revoked' });
  });
});

describe('KeyService.rotate', () => {
  it('without a grace period the old secret stops working at once', async () => {
    const { keygate, store } = setup();
    const issued = await keygate.keys.create({ name: 'k', scopes: ['read:data'] });
    expect((await keygate.authenticate(request(issued.secret))).ok).toBe(true);

    const rotated = await keygate.keys.rotate(issued.key.id);
    expect(rotated.key.id).toBe(issued.key.id);
    expect(rotated.key.scopes).toEqual(['read:data']);
    expect(rotated.secret).not.toBe(issued.secret);
    expect(rotated.key.start).toBe(rotated.secret.slice(0, 14));

    const old = await keygate.authenticate(request(issued.secret));
    expect(old.ok).toBe(false);
    expect(!old.ok && old.error.code).toBe('INVALID_API_KEY');
    expect((await keygate.authenticate(request(rotated.secret))).ok).toBe(true);
    expect(JSON.stringify(await everything(store))).not.toContain(rotated.secret);
  });

  it('with a grace period the old secret works until it ends', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(new Date('2026-03-10T12:00:00Z'));
    const { keygate } = setup({ cache: { ttlMs: 60_000 } });
    const issued = await keygate.keys.create({ name: 'k', scopes: ['read:data'] });
    const rotated = await keygate.keys.rotate(issued.key.id, { gracePeriodSeconds: 3_600 });
    expect(rotated.key.previousDigestExpiresAt).toEqual(new Date('2026-03-10T13:00:00Z'));

    expect((await keygate.authenticate(request(issued.secret))).ok).toBe(true);
    expect((await keygate.authenticate(request(rotated.secret))).ok).toBe(true);
    vi.setSystemTime(new Date('2026-03-10T12:59:59Z'));
    expect((await keygate.authenticate(request(issued.secret))).ok).toBe(true);
    vi.setSystemTime(new Date('2026-03-10T13:00:00Z'));
    const late = await keygate.authenticate(request(issued.secret));
    expect(!late.ok && late.error.code).toBe('INVALID_API_KEY');
    expect((await keygate.authenticate(request(rotated.secret))).ok).toBe(true);
    expect(await reasonsFor(keygate, issued.key.id)).toEqual(['rotated']);
  });

  it('a second rotation ends the first grace period', async () => {
    const { keygate } = setup();
    const first = await keygate.keys.create({ name: 'k', scopes: ['read:data'] });
    const second = await keygate.keys.rotate(first.key.id, { gracePeriodSeconds: 3_600 });
    const third = await keygate.keys.rotate(first.key.id, { gracePeriodSeconds: 3_600 });
    expect((await keygate.authenticate(request(first.secret))).ok).toBe(false);
    expect((await keygate.authenticate(request(second.secret))).ok).toBe(true);
    expect((await keygate.authenticate(request(third.secret))).ok).toBe(true);
  });

  it('validates the grace period and refuses a revoked key', async () => {
    const { keygate } = setup();
    const issued = await keygate.keys.create({ name: 'k', scopes: ['read:data'] });
    expect(
      (await refusal(keygate.keys.rotate(issued.key.id, { gracePeriodSeconds: -1 }))).message,
    ).toMatch(/^gracePeriodSeconds: /);
    expect(
      (await refusal(keygate.keys.rotate(issued.key.id, { gracePeriodSeconds: 1.5 }))).message,
    ).toMatch(/^gracePeriodSeconds: /);
    await keygate.keys.revoke(issued.key.id);
    expect((await refusal(keygate.keys.rotate(issued.key.id))).message).toBe('the key is revoked');
  });
});

describe('KeyService.revoke', () => {
  it('a revoked key fails at once, even though it was cached', async () => {
    const { keygate } = setup({ cache: { ttlMs: 3_600_000 } });
    const issued = await keygate.keys.create({ name: 'k', scopes: ['read:data'] });
    expect((await keygate.authenticate(request(issued.secret))).ok).toBe(true);
    const revoked = await keygate.keys.revoke(issued.key.id);
    expect(revoked.revokedAt).toBeInstanceOf(Date);
    const after = await keygate.authenticate(request(issued.secret));
    expect(after.ok).toBe(false);
    expect(!after.ok && after.error.code).toBe('INVALID_API_KEY');
    expect(!after.ok && after.error.message).toBe('Invalid API key');
    expect(await reasonsFor(keygate, issued.key.id)).toEqual(['revoked']);
  });

  it('revoked keys leave the default listing', async () => {
    const { keygate } = setup();
    const kept = await keygate.keys.create({ name: 'kept', scopes: [] });
    const gone = await keygate.keys.create({ name: 'gone', scopes: [] });
    await keygate.keys.revoke(gone.key.id);
    expect((await keygate.keys.list()).map((k) => k.id)).toEqual([kept.key.id]);
    const all = await keygate.keys.list({ includeRevoked: true });
    expect(all.map((k) => k.id).sort()).toEqual([kept.key.id, gone.key.id].sort());
  });
});

describe('KeyService.list', () => {
  it('pages newest first with `after`', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const { keygate } = setup();
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      vi.setSystemTime(new Date(Date.UTC(2026, 0, 1, 0, 0, i)));
      ids.push((await keygate.keys.create({ name: `k${i}`, scopes: [] })).key.id);
    }
    const newestFirst = [...ids].reverse();
    const page1 = await keygate.keys.list({ limit: 2 });
    const page2 = await keygate.keys.list({ limit: 2, after: page1.at(-1)!.id });
    const page3 = await keygate.keys.list({ limit: 2, after: page2.at(-1)!.id });
    expect(page1.map((k) => k.id)).toEqual(newestFirst.slice(0, 2));
    expect(page2.map((k) => k.id)).toEqual(newestFirst.slice(2, 4));
    expect(page3.map((k) => k.id)).toEqual(newestFirst.slice(4));
    expect(await keygate.keys.list({ limit: 2, after: page3.at(-1)!.id })).toEqual([]);
  });

  it('filters by owner', async () => {
    const { keygate } = setup();
    const a = await keygate.keys.create({ name: 'a', scopes: [], ownerId: 'org_a' });
    await keygate.keys.create({ name: 'b', scopes: [], ownerId: 'org_b' });
    expect((await keygate.keys.list({ ownerId: 'org_a' })).map((k) => k.id)).toEqual([a.key.id]);
    expect(await keygate.keys.list()).toHaveLength(2);
  });
});

/** A store that writes key changes' events into its own sink, as a transactional store does. */
class AuditingStore extends MemoryKeyStore {
  readonly auditSink = new MemoryAuditSink();
  readonly received: Array<AuditEvent | undefined> = [];
  failNext = false;

  override async create(key: NewKeyRecord, event?: AuditEvent) {
    this.#refuse(event);
    const record = await super.create(key);
    await this.#record(event);
    return record;
  }

  override async update(id: string, patch: KeyPatch, event?: AuditEvent) {
    this.#refuse(event);
    const record = await super.update(id, patch);
    await this.#record(event);
    return record;
  }

  override async rotate(id: string, rotation: KeyRotation, event?: AuditEvent) {
    this.#refuse(event);
    const record = await super.rotate(id, rotation);
    await this.#record(event);
    return record;
  }

  override async revoke(id: string, at: Date, event?: AuditEvent) {
    this.#refuse(event);
    const record = await super.revoke(id, at);
    await this.#record(event);
    return record;
  }

  #refuse(event: AuditEvent | undefined): void {
    this.received.push(event);
    if (this.failNext) {
      this.failNext = false;
      throw new Error('store down');
    }
  }

  async #record(event: AuditEvent | undefined): Promise<void> {
    if (event) await this.auditSink.write([event]);
  }
}

describe('KeyService: audit of key changes', () => {
  async function changeEverything(keygate: Keygate) {
    const issued = await keygate.keys.create({ name: 'k', scopes: ['read:data'] }, { id: 'adm' });
    await keygate.keys.update(issued.key.id, { name: 'renamed' }, { id: 'adm' });
    await keygate.keys.rotate(issued.key.id, {}, { id: 'adm' });
    await keygate.keys.revoke(issued.key.id, { id: 'adm' });
    await keygate.audit.flush();
    return issued.key.id;
  }

  it('hands each event to a store whose sink is configured, and the queue skips that sink', async () => {
    const store = new AuditingStore();
    const other = new MemoryAuditSink();
    const { keygate } = setup({ store, auditSinks: [store.auditSink, other] });
    const id = await changeEverything(keygate);
    const actions = ['key.revoked', 'key.rotated', 'key.updated', 'key.created'];
    const inStore = await store.auditSink.query({ keyId: id });
    expect(inStore.map((e) => e.action)).toEqual(actions);
    expect(store.received.map((e) => e?.id)).toEqual(inStore.map((e) => e.id).reverse());
    // The other sink gets the very same events, once each.
    expect(await other.query({ keyId: id })).toEqual(inStore);
    expect(inStore.every((e) => e.actor === 'adm' && e.keyId === id)).toBe(true);
  });

  it('passes no event to a store whose sink is not configured: the queue delivers it', async () => {
    const store = new AuditingStore();
    const sink = new MemoryAuditSink();
    const { keygate } = setup({ store, auditSinks: [sink] });
    const id = await changeEverything(keygate);
    expect(store.received).toEqual([undefined, undefined, undefined, undefined]);
    expect(await store.auditSink.query({})).toEqual([]);
    expect((await sink.query({ keyId: id })).map((e) => e.action)).toEqual([
      'key.revoked',
      'key.rotated',
      'key.updated',
      'key.created',
    ]);
  });

  it('delivers no event for a change the store refused', async () => {
    const store = new AuditingStore();
    const other = new MemoryAuditSink();
    const { keygate } = setup({ store, auditSinks: [store.auditSink, other] });
    const issued = await keygate.keys.create({ name: 'k', scopes: ['read:data'] });
    store.failNext = true;
    await expect(keygate.keys.revoke(issued.key.id)).rejects.toThrow('store down');
    await keygate.audit.flush();
    expect((await other.query({})).map((e) => e.action)).toEqual(['key.created']);
  });
});
