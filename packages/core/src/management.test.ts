import { afterEach, describe, expect, it, vi } from 'vitest';
import { createKeygate, type Keygate, type KeygateOptions } from './keygate.js';
import {
  handleManagementRequest,
  MAX_MANAGEMENT_BODY,
  type ManagementResponse,
} from './management.js';
import { MemoryKeyStore } from './memory-store.js';
import type { KeygateRequest, Principal } from './types.js';

const open: Keygate[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((keygate) => keygate.close()));
});

async function principalFor(keygate: Keygate, secret: string): Promise<Principal> {
  const req: KeygateRequest = {
    method: 'GET',
    url: '/v1/api-keys',
    headers: new Headers({ authorization: `Bearer ${secret}` }),
    ip: '203.0.113.10',
  };
  const decision = await keygate.authenticate(req);
  if (!decision.ok) throw new Error(`authentication failed: ${decision.error.code}`);
  return decision.principal;
}

async function setup(options: KeygateOptions = {}) {
  const store = new MemoryKeyStore();
  const keygate = createKeygate({
    store,
    authFailureLimit: false,
    logger: { warn: vi.fn(), error: vi.fn() },
    ...options,
  });
  open.push(keygate);
  const admin = await keygate.keys.create({
    name: 'admin',
    ownerId: 'org_a',
    scopes: ['manage:keys'],
  });
  const principal = await principalFor(keygate, admin.secret);
  const call = (
    method: string,
    path: string,
    init: { body?: unknown; query?: string; as?: Principal | undefined } = {},
  ): Promise<ManagementResponse> =>
    handleManagementRequest(keygate, {
      method,
      path,
      query: new URLSearchParams(init.query ?? ''),
      body: async () => init.body,
      principal: 'as' in init ? init.as : principal,
      ip: '203.0.113.10',
      userAgent: 'test',
      requestId: 'req-1',
    });
  return { keygate, store, admin, principal, call };
}

function data(response: ManagementResponse): Record<string, unknown> {
  expect(response.body).toMatchObject({ success: true });
  return (response.body as { data: Record<string, unknown> }).data;
}

function failure(response: ManagementResponse, status: number, code: string) {
  expect(response.status).toBe(status);
  expect(response.body).toMatchObject({ success: false, code });
  expect(typeof (response.body as { error: unknown }).error).toBe('string');
  return response.body as { success: false; error: string; code: string };
}

describe('management routes', () => {
  it('POST / creates a key: 201 with the secret, owned by the caller’s organisation', async () => {
    const { call } = await setup();
    const response = await call('POST', '/', {
      body: JSON.stringify({
        name: 'Reporting',
        scopes: ['read:data'],
        resources: ['website:w_1'],
      }),
    });
    expect(response.status).toBe(201);
    const created = data(response);
    expect(created).toMatchObject({
      name: 'Reporting',
      ownerId: 'org_a',
      type: 'secret',
      environment: 'live',
      scopes: ['read:data'],
      resources: ['website:w_1'],
    });
    expect(created.secret).toMatch(/^sk_live_[0-9A-Za-z]{38}$/);
    expect(created.start).toBe((created.secret as string).slice(0, 14));
    expect(created).not.toHaveProperty('digest');
  });

  it('accepts an already-parsed body', async () => {
    const { call } = await setup();
    const response = await call('POST', '', { body: { name: 'Parsed', scopes: [] } });
    expect(response.status).toBe(201);
  });

  it('GET / lists keys without secrets or digests; GET /:id shows one', async () => {
    const { call, store } = await setup();
    const created = data(await call('POST', '/', { body: { name: 'k', scopes: ['read:data'] } }));
    const listed = await call('GET', '/');
    expect(listed.status).toBe(200);
    const items = (listed.body as { data: Array<Record<string, unknown>> }).data;
    expect(items.map((k) => k.name).sort()).toEqual(['admin', 'k']);
    for (const item of items) {
      expect(item).toHaveProperty('start');
      expect(item).toHaveProperty('prefix', 'sk_live_');
      expect(item).not.toHaveProperty('secret');
      expect(item).not.toHaveProperty('digest');
      expect(item).not.toHaveProperty('previousDigest');
    }
    const shown = await call('GET', `/${created.id}`);
    expect(shown.status).toBe(200);
    expect(data(shown)).toMatchObject({ id: created.id, name: 'k' });
    expect(data(shown)).not.toHaveProperty('secret');
    expect(data(shown)).not.toHaveProperty('digest');

    const digests = (await store.list({ limit: 100 })).map((r) => r.digest);
    const text = JSON.stringify([listed.body, shown.body]);
    expect(text).not.toContain(created.secret as string);
    for (const digest of digests) expect(text).not.toContain(digest);
  });

  it('GET / pages with limit and after, and can include revoked keys', async () => {
    const { call } = await setup();
    for (const name of ['a', 'b', 'c']) await call('POST', '/', { body: { name, scopes: [] } });
    const first = (await call('GET', '/', { query: 'limit=2' })).body as {
      data: Array<{ id: string }>;
    };
    expect(first.data).toHaveLength(2);
    const rest = (await call('GET', '/', { query: `limit=10&after=${first.data[1]!.id}` }))
      .body as {
      data: Array<{ id: string }>;
    };
    expect(rest.data).toHaveLength(2);
    expect(new Set([...first.data, ...rest.data].map((k) => k.id)).size).toBe(4);

    await call('DELETE', `/${first.data[0]!.id}`);
    expect(((await call('GET', '/')).body as { data: unknown[] }).data).toHaveLength(3);
    expect(
      ((await call('GET', '/', { query: 'include_revoked=true' })).body as { data: unknown[] })
        .data,
    ).toHaveLength(4);
  });

  it.each(['0', '-1', 'ten', '1001', '1.5'])('GET / refuses limit=%s', async (limit) => {
    const { call } = await setup();
    const body = failure(
      await call('GET', '/', { query: `limit=${limit}` }),
      400,
      'INVALID_REQUEST',
    );
    expect(body.error).toBe('limit must be an integer from 1 to 1000');
  });

  it('PATCH /:id updates', async () => {
    const { call } = await setup();
    const created = data(await call('POST', '/', { body: { name: 'k', scopes: ['read:data'] } }));
    const response = await call('PATCH', `/${created.id}`, {
      body: JSON.stringify({ name: 'renamed', scopes: ['read:data', 'write:llm'] }),
    });
    expect(response.status).toBe(200);
    expect(data(response)).toMatchObject({
      id: created.id,
      name: 'renamed',
      scopes: ['read:data', 'write:llm'],
    });
    expect(data(response)).not.toHaveProperty('secret');
  });

  it('POST /:id/rotate issues a new secret for the same key', async () => {
    const { call, keygate } = await setup();
    const created = data(await call('POST', '/', { body: { name: 'k', scopes: ['read:data'] } }));
    const response = await call('POST', `/${created.id}/rotate`, { body: '' });
    expect(response.status).toBe(200);
    const rotated = data(response);
    expect(rotated.id).toBe(created.id);
    expect(rotated.secret).toMatch(/^sk_live_/);
    expect(rotated.secret).not.toBe(created.secret);
    await expect(principalFor(keygate, created.secret as string)).rejects.toThrow(
      'INVALID_API_KEY',
    );
    await expect(principalFor(keygate, rotated.secret as string)).resolves.toMatchObject({
      id: created.id,
    });

    const graceful = data(
      await call('POST', `/${created.id}/rotate`, { body: { gracePeriodSeconds: 60 } }),
    );
    await expect(principalFor(keygate, rotated.secret as string)).resolves.toMatchObject({
      id: created.id,
    });
    await expect(principalFor(keygate, graceful.secret as string)).resolves.toMatchObject({
      id: created.id,
    });
  });

  it('DELETE /:id revokes', async () => {
    const { call, keygate } = await setup();
    const created = data(await call('POST', '/', { body: { name: 'k', scopes: ['read:data'] } }));
    await principalFor(keygate, created.secret as string);
    const response = await call('DELETE', `/${created.id}`);
    expect(response).toEqual({
      status: 200,
      body: { success: true, message: 'API key revoked successfully' },
      headers: {},
    });
    await expect(principalFor(keygate, created.secret as string)).rejects.toThrow(
      'INVALID_API_KEY',
    );
    expect(data(await call('GET', `/${created.id}`)).revokedAt).toEqual(expect.any(Date));
  });

  it('GET /:id/events lists the key’s audit events, newest first, without secrets', async () => {
    const { call, keygate } = await setup();
    const created = data(await call('POST', '/', { body: { name: 'k', scopes: ['read:data'] } }));
    await principalFor(keygate, created.secret as string);
    await call('PATCH', `/${created.id}`, { body: { name: 'renamed' } });
    await keygate.audit.flush();
    const response = await call('GET', `/${created.id}/events`);
    expect(response.status).toBe(200);
    const events = (response.body as { data: Array<Record<string, unknown>> }).data;
    expect(events.map((e) => e.action)).toEqual(['key.updated', 'auth.succeeded', 'key.created']);
    expect(events[2]).toMatchObject({
      keyId: created.id,
      actor: expect.stringMatching(/^key_/),
      requestId: 'req-1',
    });
    expect(JSON.stringify(events)).not.toContain(created.secret as string);
    const limited = (await call('GET', `/${created.id}/events`, { query: 'limit=1' })).body as {
      data: unknown[];
    };
    expect(limited.data).toHaveLength(1);
  });
});

describe('management authorisation', () => {
  it('401 without a principal', async () => {
    const { call } = await setup();
    const response = await call('GET', '/', { as: undefined });
    failure(response, 401, 'AUTH_REQUIRED');
    expect(response.headers['WWW-Authenticate']).toBe('Bearer realm="api"');
  });

  it('403 for a public key, even one with the admin scope name configured as public-safe', async () => {
    const { keygate, call } = await setup({ publicScopes: ['track:events', 'manage:keys'] });
    const pub = await keygate.keys.create({
      name: 'p',
      ownerId: 'org_a',
      type: 'public',
      scopes: ['manage:keys'],
    });
    const body = failure(
      await call('GET', '/', { as: await principalFor(keygate, pub.secret) }),
      403,
      'FORBIDDEN',
    );
    expect(body.error).toBe('Public keys cannot manage API keys');
  });

  it('403 INSUFFICIENT_SCOPE for a secret key without manage:keys', async () => {
    const { keygate, call } = await setup();
    const reader = await keygate.keys.create({
      name: 'r',
      ownerId: 'org_a',
      scopes: ['read:data'],
    });
    const response = await call('POST', '/', {
      body: { name: 'escalate', scopes: ['manage:keys'] },
      as: await principalFor(keygate, reader.secret),
    });
    failure(response, 403, 'INSUFFICIENT_SCOPE');
    expect(response.headers['WWW-Authenticate']).toContain('scope="manage:keys"');
    expect(await keygate.keys.list({ ownerId: 'org_a' })).toHaveLength(2);
  });

  it('sessions need the admin flag', async () => {
    const { call } = await setup();
    const session = (admin: boolean): Principal => ({
      kind: 'session',
      id: 'sess_1',
      ownerId: 'org_a',
      scopes: [],
      resources: null,
      type: 'secret',
      environment: 'live',
      session: { id: 'sess_1', ownerId: 'org_a', scopes: [], admin },
    });
    failure(await call('GET', '/', { as: session(false) }), 403, 'FORBIDDEN');
    const listed = await call('GET', '/', { as: session(true) });
    expect(listed.status).toBe(200);
  });

  it("another organisation's key answers 404 on every route", async () => {
    const { keygate, call } = await setup();
    const other = await keygate.keys.create({ name: 'b', ownerId: 'org_b', scopes: ['read:data'] });
    const id = other.key.id;
    const attempts: Array<[string, string, unknown]> = [
      ['GET', `/${id}`, undefined],
      ['PATCH', `/${id}`, { name: 'mine' }],
      ['POST', `/${id}/rotate`, {}],
      ['DELETE', `/${id}`, undefined],
      ['GET', `/${id}/events`, undefined],
    ];
    for (const [method, path, body] of attempts) {
      const response = await call(method, path, { body });
      expect(failure(response, 404, 'NOT_FOUND').error).toBe('API key not found');
    }
    const listed = (await call('GET', '/', { query: 'include_revoked=true' })).body as {
      data: Array<{ id: string }>;
    };
    expect(listed.data.map((k) => k.id)).not.toContain(id);
    expect(await keygate.keys.get(id)).toMatchObject({ name: 'b', revokedAt: null });
    await expect(principalFor(keygate, other.secret)).resolves.toMatchObject({ id });
  });

  it('an unknown id is 404 like a foreign one', async () => {
    const { call } = await setup();
    expect(failure(await call('GET', '/key_doesnotexist'), 404, 'NOT_FOUND').error).toBe(
      'API key not found',
    );
  });
});

describe('management input', () => {
  it('malformed JSON is 400', async () => {
    const { call } = await setup();
    const body = failure(
      await call('POST', '/', { body: '{"name": "k",' }),
      400,
      'INVALID_REQUEST',
    );
    expect(body.error).toBe('the request body is not valid JSON');
  });

  it('unknown fields are 400', async () => {
    const { call, admin } = await setup();
    expect(
      failure(
        await call('POST', '/', { body: { name: 'k', scopes: [], admin: true } }),
        400,
        'INVALID_REQUEST',
      ).error,
    ).toMatch(/Unrecognized key: "admin"/);
    expect(
      failure(
        await call('PATCH', `/${admin.key.id}`, { body: { ownerId: 'org_b' } }),
        400,
        'INVALID_REQUEST',
      ).error,
    ).toMatch(/Unrecognized key: "ownerId"/);
    expect(
      failure(
        await call('POST', `/${admin.key.id}/rotate`, { body: { grace: 60 } }),
        400,
        'INVALID_REQUEST',
      ).error,
    ).toMatch(/Unrecognized key: "grace"/);
  });

  it('a body that is not an object is 400', async () => {
    const { call } = await setup();
    for (const body of ['null', '[]', '"text"', '42']) {
      failure(await call('POST', '/', { body }), 400, 'INVALID_REQUEST');
    }
  });

  it('a body over the limit is 400', async () => {
    const { call, store } = await setup();
    const huge = JSON.stringify({
      name: 'k',
      scopes: [],
      metadata: { blob: 'x'.repeat(MAX_MANAGEMENT_BODY) },
    });
    const body = failure(await call('POST', '/', { body: huge }), 400, 'INVALID_REQUEST');
    expect(body.error).toBe('the request body is too large');
    expect(await store.list({ limit: 100 })).toHaveLength(1);
  });

  it('validation messages reach the caller', async () => {
    const { call } = await setup();
    const body = failure(
      await call('POST', '/', { body: { name: 'w', type: 'public', scopes: ['read:data'] } }),
      400,
      'INVALID_REQUEST',
    );
    expect(body.error).toBe(
      'scopes: a public key cannot hold read:data (allowed: track:events, read:config)',
    );
    expect(
      failure(
        await call('POST', '/', { body: { name: 'k', scopes: [], ownerId: 'org_b' } }),
        400,
        'INVALID_REQUEST',
      ).error,
    ).toBe('ownerId: cannot create keys for another owner');
  });

  it.each([
    ['GET', '/key_1/nope'],
    ['PUT', '/key_1'],
    ['GET', '/a/b/c'],
    ['DELETE', '/'],
    ['POST', '/key_1'],
    ['GET', '/key%201'],
  ])('%s %s is 404', async (method, path) => {
    const { call } = await setup();
    const body = failure(await call(method, path), 404, 'NOT_FOUND');
    expect(body.error).toBe('No such API key endpoint');
  });

  it('a store failure is 503 and is logged', async () => {
    const store = new MemoryKeyStore();
    const { call, keygate } = await setup({ store });
    vi.spyOn(store, 'list').mockRejectedValue(new Error('connection refused'));
    failure(await call('GET', '/'), 503, 'SERVICE_UNAVAILABLE');
    expect(keygate.logger.error).toHaveBeenCalled();
  });
});

describe('GET /me', () => {
  it('says who is calling and the bounds it delegates within, never a secret', async () => {
    const { call, admin } = await setup();
    const response = await call('GET', '/me');
    expect(response.status).toBe(200);
    expect((response.body as { data: unknown }).data).toEqual({
      kind: 'key',
      id: admin.key.id,
      ownerId: 'org_a',
      type: 'secret',
      environment: 'live',
      scopes: ['manage:keys'],
      resources: null,
      name: 'admin',
      start: admin.key.start,
      expiresAt: null,
      restrictions: null,
      rateLimit: null,
    });
    expect(JSON.stringify(response.body)).not.toContain(admin.secret);
  });

  it('answers a session with its own scopes and resources', async () => {
    const { call } = await setup();
    const session: Principal = {
      kind: 'session',
      id: 'sess_1',
      ownerId: 'org_a',
      scopes: ['read:data'],
      resources: ['website:w_1'],
      type: 'secret',
      environment: 'live',
      session: { id: 'sess_1', ownerId: 'org_a', scopes: ['read:data'], admin: true },
    };
    const response = await call('GET', '/me', { as: session });
    expect((response.body as { data: unknown }).data).toEqual({
      kind: 'session',
      id: 'sess_1',
      ownerId: 'org_a',
      type: 'secret',
      environment: 'live',
      scopes: ['read:data'],
      resources: ['website:w_1'],
    });
  });

  it('is for admins only, like the rest of the router', async () => {
    const { call, keygate } = await setup();
    const reader = await keygate.keys.create({
      name: 'r',
      ownerId: 'org_a',
      scopes: ['read:data'],
    });
    const as = await principalFor(keygate, reader.secret);
    expect(failure(await call('GET', '/me', { as }), 403, 'INSUFFICIENT_SCOPE')).toBeDefined();
    expect(
      failure(await call('GET', '/me', { as: undefined }), 401, 'AUTH_REQUIRED'),
    ).toBeDefined();
  });
});
