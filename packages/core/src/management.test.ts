import { Readable } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { KeygateError } from './errors.js';
import { createKeygate, type Keygate, type KeygateOptions } from './keygate.js';
import {
  handleManagementRequest,
  MAX_MANAGEMENT_BODY,
  type ManagementResponse,
  pathBelowMount,
  pathUnder,
} from './management.js';
import { MemoryKeyStore } from './memory-store.js';
import type { Authentication, KeygateRequest, Principal } from './types.js';

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
    scopes: ['manage:keys', 'read:data', 'write:llm', 'track:events'],
  });
  const principal = await principalFor(keygate, admin.secret);
  /** A request authenticated as `principal` by a middleware before the router (none: the router authenticates it). */
  const authenticated = (
    principal: Principal | undefined,
    method: string,
  ): Authentication | undefined =>
    principal && {
      ok: true,
      principal,
      headers: { 'X-RateLimit-Limit': '10000' },
      context: {
        ip: '203.0.113.10',
        userAgent: 'test',
        method,
        path: '/v1/api-keys',
        requestId: 'req-1',
      },
      keygate,
    };
  const call = (
    method: string,
    path: string,
    init: {
      body?: unknown;
      query?: string;
      as?: Principal | undefined;
      headers?: Record<string, string>;
    } = {},
  ): Promise<ManagementResponse> =>
    handleManagementRequest(keygate, {
      request: {
        method,
        url: `/v1/api-keys${path === '/' ? '' : path}${init.query ? `?${init.query}` : ''}`,
        headers: new Headers({
          'user-agent': 'test',
          'x-request-id': 'req-1',
          ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}),
          ...init.headers,
        }),
        ip: '203.0.113.10',
      },
      path,
      origin: 'https://api.example.com',
      body: async () => init.body,
      authentication: authenticated('as' in init ? init.as : principal, method),
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

  it('every answer, success or refusal, carries Cache-Control: no-store (some hold a secret)', async () => {
    const { call } = await setup();
    const created = await call('POST', '/', { body: { name: 'k', scopes: ['read:data'] } });
    const id = data(created).id as string;
    const answers = [
      created,
      await call('POST', `/${id}/rotate`, { body: {} }),
      await call('GET', '/'),
      await call('GET', '/me'),
      await call('GET', `/${id}`),
      await call('GET', '/key_missing'),
      await call('GET', '/', { as: undefined, headers: { authorization: 'Bearer sk_live_x' } }),
    ];
    expect(answers.map((answer) => answer.headers['Cache-Control'])).toEqual(
      answers.map(() => 'no-store'),
    );
    expect(answers.map((answer) => answer.status)).toEqual([201, 200, 200, 200, 200, 404, 401]);
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
    // The request's rate-limit headers go with the answer.
    expect(response).toEqual({
      ok: true,
      status: 200,
      body: { success: true, message: 'API key revoked successfully' },
      headers: { 'X-RateLimit-Limit': '10000', 'Cache-Control': 'no-store' },
    });
    await expect(principalFor(keygate, created.secret as string)).rejects.toThrow(
      'INVALID_API_KEY',
    );
    expect(data(await call('GET', `/${created.id}`)).revokedAt).toEqual(expect.any(Date));
  });

  it('GET /:id/usage counts the key’s requests per hour, from the in-memory sink', async () => {
    const { call, keygate } = await setup();
    const created = data(await call('POST', '/', { body: { name: 'k', scopes: ['read:data'] } }));
    for (let i = 0; i < 3; i++) await principalFor(keygate, created.secret as string);
    await keygate.audit.flush();
    const response = await call('GET', `/${created.id}/usage`, { query: 'range=24h' });
    expect(response.status).toBe(200);
    const usage = data(response) as unknown as {
      range: string;
      buckets: Array<{ served: number; failed: number; rateLimited: number }>;
    };
    expect(usage.range).toBe('24h');
    expect(usage.buckets).toHaveLength(24);
    expect(usage.buckets.at(-1)).toMatchObject({ served: 3, failed: 0, rateLimited: 0 });
    failure(
      await call('GET', `/${created.id}/usage`, { query: 'interval=week' }),
      400,
      'INVALID_REQUEST',
    );
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
    // The admin's authentication is counted as usage, not listed as an event.
    expect(events.map((e) => e.action)).toEqual(['key.updated', 'key.created']);
    expect(events[1]).toMatchObject({
      keyId: created.id,
      actor: expect.stringMatching(/^key_/),
      requestId: 'req-1',
      // Who acted, by name and start as well as id: what the page shows on each row.
      detail: expect.objectContaining({
        by: { name: 'admin', start: expect.stringMatching(/^sk_live_/), via: 'key' },
      }),
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
      ['GET', `/${id}/usage`, undefined],
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

  it('reads a stream body itself, stopping at the limit, and closes the connection then', async () => {
    const { call, store } = await setup();
    const created = await call('POST', '/', {
      body: Readable.from([Buffer.from('{"name":"streamed",'), '"scopes":["read:data"]}']),
    });
    expect(created.status).toBe(201);
    expect(data(created).name).toBe('streamed');

    let read = 0;
    const endless = Readable.from(
      (function* () {
        for (;;) {
          read++;
          yield Buffer.alloc(16 * 1024, 'x');
        }
      })(),
    );
    const tooLarge = await call('POST', '/', { body: endless });
    expect(failure(tooLarge, 400, 'INVALID_REQUEST').error).toBe('the request body is too large');
    expect(tooLarge.headers.Connection).toBe('close');
    expect(read).toBeLessThanOrEqual(MAX_MANAGEMENT_BODY / (16 * 1024) + 2);

    // A declared length over the limit is refused before a byte is read.
    let touched = false;
    const declared = await call('POST', '/', {
      body: Readable.from(
        (function* () {
          touched = true;
          yield '{}';
        })(),
      ),
      headers: { 'content-length': String(MAX_MANAGEMENT_BODY + 1) },
    });
    failure(declared, 400, 'INVALID_REQUEST');
    expect(touched).toBe(false);
    expect(await store.list({ limit: 100 })).toHaveLength(2);
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

  it('an encoded slash never reaches another route', async () => {
    const { call, admin } = await setup();
    for (const path of [`/${admin.key.id}%2Frotate`, `/${admin.key.id}%2frotate`]) {
      failure(await call('POST', path, { body: {} }), 404, 'NOT_FOUND');
    }
    expect(await call('GET', `/${admin.key.id}`)).toMatchObject({
      body: { data: { start: admin.key.start } },
    });
  });

  it('a cursor that is not a key id is 400', async () => {
    const { call } = await setup();
    for (const after of ['%00', 'a%2Fb', 'x'.repeat(201), '']) {
      expect(
        failure(await call('GET', '/', { query: `after=${after}` }), 400, 'INVALID_REQUEST').error,
      ).toBe('after must be a key id');
    }
  });

  it("another organisation's key as the cursor answers like an unknown id", async () => {
    const { call, keygate } = await setup();
    const other = await keygate.keys.create({ name: 'b', ownerId: 'org_b', scopes: [] });
    await call('POST', '/', { body: { name: 'newer', scopes: [] } });
    const foreign = await call('GET', '/', { query: `after=${other.key.id}` });
    const unknown = await call('GET', '/', { query: 'after=key_doesnotexist' });
    expect(foreign).toEqual(unknown);
    expect(foreign.body).toEqual({ success: true, data: [] });
  });

  it('a value the store refuses for what it is: 400, not 503', async () => {
    const store = new MemoryKeyStore();
    const { call, keygate } = await setup({ store });
    vi.spyOn(store, 'create').mockRejectedValue(
      new KeygateError('INVALID_REQUEST', {
        message: 'the database cannot store a value of this request',
      }),
    );
    expect(
      failure(await call('POST', '/', { body: { name: 'k', scopes: [] } }), 400, 'INVALID_REQUEST')
        .error,
    ).toBe('the database cannot store a value of this request');
    expect(keygate.logger.error).not.toHaveBeenCalled();
  });

  it('a store failure is 503 and is logged', async () => {
    const store = new MemoryKeyStore();
    const { call, keygate } = await setup({ store });
    vi.spyOn(store, 'list').mockRejectedValue(new Error('connection refused'));
    failure(await call('GET', '/'), 503, 'SERVICE_UNAVAILABLE');
    expect(keygate.logger.error).toHaveBeenCalled();
  });
});

describe('management: delegation', () => {
  it('refuses a key reaching further than its caller with 403 FORBIDDEN naming the bound', async () => {
    const { call, keygate } = await setup();
    const scoped = await keygate.keys.create({
      name: 'scoped admin',
      ownerId: 'org_a',
      scopes: ['manage:keys', 'read:data'],
      resources: ['website:w_1'],
    });
    const as = await principalFor(keygate, scoped.secret);
    const response = await call('POST', '/', {
      as,
      body: { name: 'escalate', scopes: ['read:data', 'write:llm'], resources: ['website:w_1'] },
    });
    expect(response).toMatchObject({
      ok: false,
      status: 403,
      body: {
        success: false,
        error: 'scopes: cannot grant write:llm, which the caller does not hold',
        code: 'FORBIDDEN',
      },
    });
    expect(response.headers['WWW-Authenticate']).toBeUndefined();
    expect(
      failure(
        await call('POST', '/', { as, body: { name: 'global', scopes: [] } }),
        403,
        'FORBIDDEN',
      ).error,
    ).toBe('resources: cannot grant access to every resource, which only a global caller has');
    expect(
      data(
        await call('POST', '/', {
          as,
          body: { name: 'ok', scopes: ['read:data'], resources: ['website:w_1'] },
        }),
      ),
    ).toMatchObject({ scopes: ['read:data'], resources: ['website:w_1'] });
  });

  it('a session is bounded by the scopes and resources its resolver grants', async () => {
    const { call } = await setup();
    const as: Principal = {
      kind: 'session',
      id: 'sess_1',
      ownerId: 'org_a',
      scopes: ['read:data'],
      resources: null,
      type: 'secret',
      environment: 'live',
      session: { id: 'sess_1', ownerId: 'org_a', scopes: ['read:data'], admin: true },
    };
    const sameSite = { origin: 'https://api.example.com' };
    expect(
      failure(
        await call('POST', '/', {
          as,
          headers: sameSite,
          body: { name: 'k', scopes: ['manage:keys'] },
        }),
        403,
        'FORBIDDEN',
      ).error,
    ).toBe('scopes: cannot grant manage:keys, which the caller does not hold');
    const created = await call('POST', '/', {
      as,
      headers: sameSite,
      body: { name: 'k', scopes: ['read:data'], environment: 'test' },
    });
    expect(created.status).toBe(201);
  });
});

describe('management: browser sessions (CSRF) and media types', () => {
  const session = (admin = true): Principal => ({
    kind: 'session',
    id: 'sess_1',
    ownerId: 'org_a',
    scopes: ['read:data'],
    resources: null,
    type: 'secret',
    environment: 'live',
    session: { id: 'sess_1', ownerId: 'org_a', scopes: ['read:data'], admin },
  });
  const create = { name: 'k', scopes: ['read:data'] };

  it('a session may change keys only from the request’s own origin', async () => {
    const { call } = await setup();
    const as = session();
    const refused = (headers: Record<string, string>) =>
      call('POST', '/', { as, headers, body: create }).then((r) => failure(r, 403, 'FORBIDDEN'));
    const crossSite: Array<Record<string, string>> = [
      { origin: 'https://evil.example' },
      { origin: 'http://api.example.com' },
      { origin: 'https://api.example.com.evil.example' },
      { origin: 'null' },
      { origin: 'https://evil.example', 'sec-fetch-site': 'same-origin' },
      { 'sec-fetch-site': 'cross-site' },
      { 'sec-fetch-site': 'same-site' },
      {},
    ];
    for (const headers of crossSite) {
      expect((await refused(headers)).error).toBe('Cross-site requests cannot change API keys');
    }
    const sameOrigin: Array<Record<string, string>> = [
      { origin: 'https://api.example.com' },
      { origin: 'https://API.example.com:443' },
      { 'sec-fetch-site': 'same-origin' },
    ];
    for (const headers of sameOrigin) {
      expect((await call('POST', '/', { as, headers, body: create })).status).toBe(201);
    }
  });

  it('PATCH, rotate and DELETE are checked too; reading is not', async () => {
    const { call, admin } = await setup();
    const as = session();
    const cross = { origin: 'https://evil.example' };
    const id = admin.key.id;
    failure(
      await call('PATCH', `/${id}`, { as, headers: cross, body: { name: 'x' } }),
      403,
      'FORBIDDEN',
    );
    failure(
      await call('POST', `/${id}/rotate`, { as, headers: cross, body: {} }),
      403,
      'FORBIDDEN',
    );
    failure(await call('DELETE', `/${id}`, { as, headers: cross }), 403, 'FORBIDDEN');
    expect((await call('GET', '/', { as, headers: cross })).status).toBe(200);
  });

  it('configured trusted origins may change keys', async () => {
    const { call } = await setup({ trustedOrigins: ['https://dashboard.example.com'] });
    const created = await call('POST', '/', {
      as: session(),
      headers: { origin: 'https://dashboard.example.com' },
      body: create,
    });
    expect(created.status).toBe(201);
  });

  it('refuses trusted origins that are not origins, when configured', () => {
    for (const origin of ['dashboard.example.com', 'https://a.com/path', '*']) {
      expect(() => createKeygate({ trustedOrigins: [origin] })).toThrow(
        /INVALID_OPTION.*trustedOrigins/,
      );
    }
  });

  it('a key is not asked for an origin: a page cannot attach one', async () => {
    const { call } = await setup();
    expect(
      (await call('POST', '/', { headers: { origin: 'https://evil.example' }, body: create }))
        .status,
    ).toBe(201);
  });

  it('a body that is not application/json is 415, for keys and sessions alike', async () => {
    const { call, admin, store } = await setup();
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data']) {
      const response = await call('POST', '/', {
        body: JSON.stringify(create),
        headers: { 'content-type': type },
      });
      expect(failure(response, 415, 'UNSUPPORTED_MEDIA_TYPE').error).toBe(
        'The request body must be application/json',
      );
      expect(response.headers.Connection).toBe('close');
    }
    // A body without any Content-Type, sized or chunked.
    const bodies: Array<Record<string, string>> = [
      { 'content-length': '2' },
      { 'transfer-encoding': 'chunked' },
    ];
    for (const headers of bodies) {
      failure(
        await call('POST', `/${admin.key.id}/rotate`, { headers }),
        415,
        'UNSUPPORTED_MEDIA_TYPE',
      );
    }
    expect(
      (
        await call('POST', '/', {
          body: create,
          headers: { 'content-type': 'Application/JSON; charset=utf-8' },
        })
      ).status,
    ).toBe(201);
    expect(await store.list({ limit: 100 })).toHaveLength(2);
  });

  it('a bodiless rotate needs no content type', async () => {
    const { call, admin } = await setup();
    expect((await call('POST', `/${admin.key.id}/rotate`)).status).toBe(200);
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
      scopes: ['manage:keys', 'read:data', 'write:llm', 'track:events'],
      resources: null,
      name: 'admin',
      start: admin.key.start,
      expiresAt: null,
      restrictions: null,
      rateLimit: null,
      session: null,
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

describe('mount paths', () => {
  it('pathBelowMount cuts the mount’s segments from the path as sent, not decoded', () => {
    expect(pathBelowMount('/v1/api-keys', '/v1/api-keys')).toBe('/');
    expect(pathBelowMount('/v1/api-keys/key_1%2Frotate?x=1', '/v1/api-keys')).toBe(
      '/key_1%2Frotate',
    );
    expect(pathBelowMount('https://api.example.com/admin/keys/key_1/usage', '/admin/keys/')).toBe(
      '/key_1/usage',
    );
  });

  it('pathUnder answers only the prefix and what is below it', () => {
    expect(pathUnder('/v1/api-keys', '/v1/api-keys')).toBe('/');
    expect(pathUnder('/v1/api-keys/key_1', '/v1/api-keys')).toBe('/key_1');
    expect(pathUnder('/v1/api-keysmith', '/v1/api-keys')).toBeNull();
    expect(pathUnder('/v1', '/v1/api-keys')).toBeNull();
  });
});
