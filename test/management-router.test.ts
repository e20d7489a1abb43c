/**
 * SPEC §6: the management router (`/v1/api-keys`) on each reference app, over a real Postgres
 * store. Every adapter gets its own organisations in one fresh database.
 */
import { createHash } from 'node:crypto';
import { createKeygate, type Keygate } from '@keygate/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adapters, type RunningApp, startApp } from './conformance/harness.js';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';

let database: TestDatabase;
beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(() => database?.close());

interface Reply {
  status: number;
  headers: Headers;
  text: string;
  // biome-ignore lint/suspicious/noExplicitAny: response bodies are asserted field by field
  json: any;
}

const SECRET_FIELDS = ['secret', 'digest', 'previousDigest', 'digestVersion'];
const SERVED = { status: 200 };
const REFUSED = { status: 401, code: 'INVALID_API_KEY' };

/** What the database holds for a key, every column, as text. */
async function storedRows(id: string): Promise<string> {
  const keys = await database.sql`select * from keygate_api_keys where id = ${id}`;
  const events = await database.sql`select * from keygate_audit_events where key_id = ${id}`;
  const usage = await database.sql`select * from keygate_usage_counts where key_id = ${id}`;
  return JSON.stringify([keys, events, usage]);
}

describe.each(adapters)('$name management router', (adapter) => {
  const orgA = `org_a_${adapter.name}`;
  const orgB = `org_b_${adapter.name}`;
  let keygate: Keygate;
  let app: RunningApp;
  let adminA: string;
  let adminB: string;
  let readerA: { id: string; secret: string };
  let keyB: { id: string; secret: string };
  let publicA: string;

  beforeAll(async () => {
    keygate = createKeygate({
      store: database.store,
      auditSinks: [database.auditSink],
      authFailureLimit: false,
    });
    const issue = async (ownerId: string, name: string, scopes: string[], type = 'secret') => {
      const issued = await keygate.keys.create({
        name,
        ownerId,
        scopes,
        type: type as 'secret' | 'public',
      });
      return { id: issued.key.id, secret: issued.secret };
    };
    // Admins hold the scopes they hand on: delegation never widens access.
    const everything = ['manage:keys', 'read:data', 'write:llm', 'track:events'];
    adminA = (await issue(orgA, 'admin A', everything)).secret;
    adminB = (await issue(orgB, 'admin B', everything)).secret;
    readerA = await issue(orgA, 'reader A', ['read:data']);
    keyB = await issue(orgB, 'reader B', ['read:data']);
    publicA = (await issue(orgA, 'browser A', ['track:events'], 'public')).secret;
    app = await startApp(adapter, keygate);
  });

  afterAll(async () => {
    await app?.close();
    await keygate?.close();
  });

  async function call(
    method: string,
    path: string,
    options: { key?: string; body?: unknown; raw?: string } = {},
  ): Promise<Reply> {
    const headers: Record<string, string> = {};
    if (options.key) headers.authorization = `Bearer ${options.key}`;
    let body: string | undefined;
    if (options.raw !== undefined || options.body !== undefined) {
      headers['content-type'] = 'application/json';
      body = options.raw ?? JSON.stringify(options.body);
    }
    const response = await fetch(`${app.origin}/v1/api-keys${path}`, { method, headers, body });
    const text = await response.text();
    return { status: response.status, headers: response.headers, text, json: JSON.parse(text) };
  }

  /** `GET /v1/query/websites` with `secret`: the status, and the error code of a failure. */
  async function websites(secret: string): Promise<{ status: number; code?: string }> {
    const response = await fetch(`${app.origin}/v1/query/websites`, {
      headers: { 'x-api-key': secret },
    });
    const body = (await response.json()) as { code?: string };
    return body.code ? { status: response.status, code: body.code } : { status: response.status };
  }

  it('creates a key: 201, the secret once, only its digest stored', async () => {
    const expiresAt = new Date(Date.now() + 86_400_000).toISOString();
    const created = await call('POST', '', {
      key: adminA,
      body: {
        name: 'reporting',
        scopes: ['read:data', 'read:data'],
        resources: ['website:w_1'],
        restrictions: { ips: ['127.0.0.0/8'], endpoints: ['GET /v1/**'] },
        rateLimit: { perSecond: 5, burst: 10, daily: 1000 },
        metadata: { team: 'growth' },
        expiresAt,
      },
    });
    expect(created.status).toBe(201);
    expect(created.headers.get('content-type')).toMatch(/^application\/json/);
    const { secret, ...key } = created.json.data;
    expect(created.json.success).toBe(true);
    expect(secret).toMatch(/^sk_live_[0-9A-Za-z]{38}$/);
    expect(key).toMatchObject({
      id: expect.stringMatching(/^key_/),
      name: 'reporting',
      ownerId: orgA,
      type: 'secret',
      environment: 'live',
      prefix: 'sk_live_',
      start: secret.slice(0, 14),
      scopes: ['read:data'],
      resources: ['website:w_1'],
      restrictions: { ips: ['127.0.0.0/8'], endpoints: ['GET /v1/**'] },
      rateLimit: { perSecond: 5, burst: 10, daily: 1000 },
      metadata: { team: 'growth' },
      expiresAt,
      revokedAt: null,
    });
    for (const field of ['digest', 'previousDigest', 'digestVersion']) {
      expect(key).not.toHaveProperty(field);
    }
    expect(await websites(secret)).toEqual(SERVED);

    await keygate.audit.flush();
    const rows = await storedRows(key.id);
    expect(rows).toContain(createHash('sha256').update(secret).digest('hex'));
    expect(rows).toContain('key.created');
    expect(rows).not.toContain(secret);
    expect(rows).not.toContain(secret.slice(14));

    const shown = await call('GET', `/${key.id}`, { key: adminA });
    expect(shown.text).not.toContain(secret.slice(14));
    expect(shown.json.data).not.toHaveProperty('secret');
  });

  it('lists the caller’s organisation only, with prefix and start, never a secret', async () => {
    const listed = await call('GET', '', { key: adminA });
    expect(listed.status).toBe(200);
    expect(listed.json.success).toBe(true);
    const keys: Array<Record<string, unknown>> = listed.json.data;
    expect(keys.length).toBeGreaterThanOrEqual(3);
    expect(keys.map((k) => k.id)).toContain(readerA.id);
    expect(keys.map((k) => k.id)).not.toContain(keyB.id);
    for (const key of keys) {
      expect(key.ownerId).toBe(orgA);
      expect(key.start).toEqual(expect.stringMatching(/^(sk|pk)_live_[0-9A-Za-z]{6}$/));
      expect(key.prefix).toEqual(expect.stringMatching(/^(sk|pk)_live_$/));
      for (const field of SECRET_FIELDS) expect(key).not.toHaveProperty(field);
    }
    for (const secret of [adminA, readerA.secret, publicA]) {
      expect(listed.text).not.toContain(secret.slice(14));
    }

    const theirs = await call('GET', '', { key: adminB });
    expect(theirs.json.data.map((k: { ownerId: string }) => k.ownerId)).toEqual(
      expect.arrayContaining([orgB]),
    );
    expect(new Set(theirs.json.data.map((k: { ownerId: string }) => k.ownerId))).toEqual(
      new Set([orgB]),
    );

    const page = await call('GET', '?limit=1', { key: adminA });
    expect(page.json.data).toHaveLength(1);
  });

  it('gets one key', async () => {
    const shown = await call('GET', `/${readerA.id}`, { key: adminA });
    expect(shown.status).toBe(200);
    expect(shown.json).toEqual({
      success: true,
      data: expect.objectContaining({ id: readerA.id, name: 'reader A', scopes: ['read:data'] }),
    });
    for (const field of SECRET_FIELDS) expect(shown.json.data).not.toHaveProperty(field);
  });

  it('updates a key with PATCH, and the change applies at once', async () => {
    const { key } = await keygate.keys
      .create({
        name: 'to patch',
        ownerId: orgA,
        scopes: ['read:data'],
      })
      .then((issued) => ({ key: { ...issued.key, secret: issued.secret } }));
    expect(await websites(key.secret)).toEqual(SERVED);

    const patched = await call('PATCH', `/${key.id}`, {
      key: adminA,
      body: {
        name: 'patched',
        scopes: ['track:events'],
        resources: ['website:w_2'],
        metadata: { note: 'x' },
        rateLimit: { perSecond: 2 },
        restrictions: null,
        expiresAt: null,
      },
    });
    expect(patched.status).toBe(200);
    expect(patched.json.data).toMatchObject({
      id: key.id,
      name: 'patched',
      scopes: ['track:events'],
      resources: ['website:w_2'],
      metadata: { note: 'x' },
      rateLimit: { perSecond: 2 },
      restrictions: null,
      expiresAt: null,
    });
    for (const field of SECRET_FIELDS) expect(patched.json.data).not.toHaveProperty(field);
    expect((await call('GET', `/${key.id}`, { key: adminA })).json.data.name).toBe('patched');
    expect(await websites(key.secret)).toEqual({ status: 403, code: 'INSUFFICIENT_SCOPE' });
  });

  it('rotates a key: a new secret, the old one kept for the grace period', async () => {
    const issued = await keygate.keys.create({ name: 'rot', ownerId: orgA, scopes: ['read:data'] });
    const old = issued.secret;
    expect(await websites(old)).toEqual(SERVED);

    const graced = await call('POST', `/${issued.key.id}/rotate`, {
      key: adminA,
      body: { gracePeriodSeconds: 60 },
    });
    expect(graced.status).toBe(200);
    const fresh: string = graced.json.data.secret;
    expect(fresh).toMatch(/^sk_live_[0-9A-Za-z]{38}$/);
    expect(fresh).not.toBe(old);
    expect(graced.json.data).toMatchObject({
      id: issued.key.id,
      start: fresh.slice(0, 14),
      scopes: ['read:data'],
    });
    const graceEnds = Date.parse(graced.json.data.previousDigestExpiresAt);
    expect(graceEnds - Date.now()).toBeGreaterThan(55_000);
    expect(graceEnds - Date.now()).toBeLessThanOrEqual(60_000);
    expect(await websites(old)).toEqual(SERVED);
    expect(await websites(fresh)).toEqual(SERVED);

    // Without a body: no grace, the previous secret (and the one before) stop at once.
    const plain = await call('POST', `/${issued.key.id}/rotate`, { key: adminA });
    expect(plain.status).toBe(200);
    expect(plain.json.data.previousDigestExpiresAt).toBeNull();
    expect(await websites(fresh)).toEqual(REFUSED);
    expect(await websites(old)).toEqual(REFUSED);
    expect(await websites(plain.json.data.secret)).toEqual(SERVED);

    await keygate.audit.flush();
    const rows = await storedRows(issued.key.id);
    for (const secret of [old, fresh, plain.json.data.secret]) {
      expect(rows).not.toContain(secret.slice(14));
    }
  });

  it('revokes a key', async () => {
    const issued = await keygate.keys.create({ name: 'rev', ownerId: orgA, scopes: ['read:data'] });
    expect(await websites(issued.secret)).toEqual(SERVED);
    const revoked = await call('DELETE', `/${issued.key.id}`, { key: adminA });
    expect(revoked.status).toBe(200);
    expect(revoked.json).toEqual({ success: true, message: 'API key revoked successfully' });
    expect(await websites(issued.secret)).toEqual(REFUSED);

    const shown = await call('GET', `/${issued.key.id}`, { key: adminA });
    expect(shown.json.data.revokedAt).toEqual(expect.any(String));
    const listed = await call('GET', '', { key: adminA });
    expect(listed.json.data.map((k: { id: string }) => k.id)).not.toContain(issued.key.id);
    const all = await call('GET', '?include_revoked=true&limit=1000', { key: adminA });
    expect(all.json.data.map((k: { id: string }) => k.id)).toContain(issued.key.id);
    // A revoked key cannot be brought back by rotation or update.
    expect((await call('POST', `/${issued.key.id}/rotate`, { key: adminA })).json).toEqual({
      success: false,
      error: 'the key is revoked',
      code: 'INVALID_REQUEST',
    });
    expect(
      (await call('PATCH', `/${issued.key.id}`, { key: adminA, body: { name: 'x' } })).status,
    ).toBe(400);
  });

  it('lists a key’s audit events, without secrets', async () => {
    const issued = await keygate.keys.create({ name: 'ev', ownerId: orgA, scopes: ['read:data'] });
    expect(await websites(issued.secret)).toEqual(SERVED);
    await call('PATCH', `/${issued.key.id}`, { key: adminA, body: { name: 'ev2' } });
    await keygate.audit.flush();

    const events = await call('GET', `/${issued.key.id}/events`, { key: adminA });
    expect(events.status).toBe(200);
    expect(events.json.success).toBe(true);
    // The successful use is counted (see the usage route), not listed.
    const actions = events.json.data.map((e: { action: string }) => e.action);
    expect(actions).toEqual(['key.updated', 'key.created']);
    for (const event of events.json.data) expect(event.keyId).toBe(issued.key.id);
    expect(events.text).not.toContain(issued.secret.slice(14));
    expect(
      (await call('GET', `/${issued.key.id}/events?limit=1`, { key: adminA })).json.data,
    ).toHaveLength(1);
  });

  it('GET /:id/usage: every hour of the last 24, zeros included; served, failed and 429s by hour', async () => {
    const issued = await keygate.keys.create({
      name: 'usage',
      ownerId: orgA,
      scopes: ['read:data'],
      resources: ['website:w_1'],
      rateLimit: { perSecond: 0.001, burst: 3 },
    });
    const get = (path: string) =>
      fetch(`${app.origin}${path}`, { headers: { 'x-api-key': issued.secret } });
    const statuses: number[] = [];
    for (const path of ['/v1/websites/w_1/analytics', '/v1/websites/w_2/analytics']) {
      statuses.push((await get(path)).status);
    }
    for (let i = 0; i < 3; i++) statuses.push((await get('/v1/query/websites')).status);
    expect(statuses).toEqual([200, 403, 200, 429, 429]);
    await keygate.audit.flush();

    const before = Date.now();
    const reply = await call('GET', `/${issued.key.id}/usage`, { key: adminA });
    expect(reply.status).toBe(200);
    const { data } = reply.json;
    expect(Object.keys(data)).toEqual(['keyId', 'range', 'interval', 'from', 'to', 'buckets']);
    expect(data).toMatchObject({ keyId: issued.key.id, range: '24h', interval: 'hour' });
    expect(data.buckets).toHaveLength(24);
    const starts = data.buckets.map((b: { start: string }) => Date.parse(b.start));
    expect(starts[0]).toBe(Date.parse(data.from));
    for (let i = 1; i < starts.length; i++) expect(starts[i] - starts[i - 1]).toBe(3_600_000);
    expect(starts[0] % 3_600_000).toBe(0);
    expect(Date.parse(data.to)).toBeGreaterThanOrEqual(before - 1_000);
    // Three authentications succeeded (one then denied for its resource); two were refused 429.
    expect(data.buckets.at(-1)).toEqual({
      start: expect.any(String),
      served: 3,
      failed: 1,
      rateLimited: 2,
    });
    for (const bucket of data.buckets.slice(0, -1)) {
      expect(bucket).toEqual({ start: bucket.start, served: 0, failed: 0, rateLimited: 0 });
    }

    const month = await call('GET', `/${issued.key.id}/usage?range=30d`, { key: adminA });
    expect(month.json.data).toMatchObject({ range: '30d', interval: 'day' });
    expect(month.json.data.buckets).toHaveLength(30);
    expect(month.json.data.buckets.at(-1)).toMatchObject({ served: 3, failed: 1, rateLimited: 2 });
    const week = await call('GET', `/${issued.key.id}/usage?range=7d`, { key: adminA });
    expect(week.json.data.buckets).toHaveLength(168);

    const from = new Date(Date.now() - 3 * 86_400_000).toISOString();
    const custom = await call('GET', `/${issued.key.id}/usage?from=${from}&interval=day`, {
      key: adminA,
    });
    expect(custom.status).toBe(200);
    expect(custom.json.data).toMatchObject({ range: null, interval: 'day' });
    expect(custom.json.data.buckets.length).toBeGreaterThanOrEqual(4);
    expect(custom.json.data.buckets.at(-1)).toMatchObject({ served: 3 });
  });

  it('GET /:id/usage refuses bad windows with 400 INVALID_REQUEST', async () => {
    const bad = [
      'range=1y',
      'interval=minute',
      'from=yesterday',
      'to=2024-13-01T00:00:00Z',
      'from=2024-01-02T00:00:00Z&to=2024-01-01T00:00:00Z',
      'from=2020-01-01T00:00:00Z&to=2024-01-01T00:00:00Z&interval=hour',
      'range=24h&from=2024-01-01T00:00:00Z',
    ];
    for (const query of bad) {
      const reply = await call('GET', `/${readerA.id}/usage?${query}`, { key: adminA });
      expect({ query, status: reply.status, code: reply.json.code }).toEqual({
        query,
        status: 400,
        code: 'INVALID_REQUEST',
      });
    }
    const unauthenticated = await call('GET', `/${readerA.id}/usage`);
    expect(unauthenticated.status).toBe(401);
    const notAdmin = await call('GET', `/${readerA.id}/usage`, { key: readerA.secret });
    expect(notAdmin.status).toBe(403);
  });

  it('answers 404 for another organisation’s key, and leaves it alone', async () => {
    const notFound = { success: false, error: 'API key not found', code: 'NOT_FOUND' };
    const attempts: Array<[string, string, unknown?]> = [
      ['GET', `/${keyB.id}`],
      ['PATCH', `/${keyB.id}`, { name: 'mine now' }],
      ['POST', `/${keyB.id}/rotate`, {}],
      ['DELETE', `/${keyB.id}`],
      ['GET', `/${keyB.id}/events`],
      ['GET', `/${keyB.id}/usage`],
      ['GET', `/${keyB.id}/usage?range=7d`],
    ];
    for (const [method, path, body] of attempts) {
      const reply = await call(method, path, { key: adminA, body });
      expect({ method, status: reply.status, body: reply.json }).toEqual({
        method,
        status: 404,
        body: notFound,
      });
    }
    const untouched = await call('GET', `/${keyB.id}`, { key: adminB });
    expect(untouched.json.data).toMatchObject({ name: 'reader B', revokedAt: null });
    expect(await websites(keyB.secret)).toEqual(SERVED);

    const foreign = await call('POST', '', {
      key: adminA,
      body: { name: 'planted', ownerId: orgB, scopes: ['read:data'] },
    });
    expect(foreign.status).toBe(400);
    expect(foreign.json).toEqual({
      success: false,
      error: 'ownerId: cannot create keys for another owner',
      code: 'INVALID_REQUEST',
    });
  });

  it("answers a cursor naming another organisation's key exactly as an unknown one", async () => {
    const foreign = await call('GET', `?after=${keyB.id}&include_revoked=true`, { key: adminA });
    const unknown = await call('GET', '?after=key_doesnotexist&include_revoked=true', {
      key: adminA,
    });
    expect(foreign.status).toBe(200);
    expect(foreign.json).toEqual({ success: true, data: [] });
    expect(foreign.text).toBe(unknown.text);
    // The same id is a cursor for its own organisation.
    expect((await call('GET', `?after=${keyB.id}`, { key: adminB })).status).toBe(200);
  });

  it('holds a confined admin key to its own reach, as the database stores it', async () => {
    const expiresAt = new Date(Date.now() + 7 * 86_400_000).toISOString();
    const confined = await keygate.keys.create({
      name: 'confined',
      ownerId: orgA,
      environment: 'test',
      scopes: ['manage:keys', 'read:data'],
      resources: ['website:w_1'],
      restrictions: { ips: ['127.0.0.1/32', '::1/128'] },
      rateLimit: { perSecond: 1, burst: 100 },
      expiresAt,
    });
    const self = `/${confined.key.id}`;
    const refused = async (method: string, path: string, body?: unknown) => {
      const reply = await call(method, path, { key: confined.secret, body });
      expect({ status: reply.status, code: reply.json.code }).toEqual({
        status: 403,
        code: 'FORBIDDEN',
      });
      return reply.json.error as string;
    };
    expect(await refused('PATCH', self, { restrictions: null })).toMatch(/^restrictions\.ips: /);
    expect(await refused('PATCH', self, { expiresAt: null })).toMatch(/^expiresAt: /);
    expect(await refused('PATCH', self, { rateLimit: { perSecond: 2 } })).toMatch(
      /^rateLimit\.perSecond: /,
    );
    expect(await refused('POST', `/${readerA.id}/rotate`, {})).toMatch(/^environment: /);
    expect(await refused('POST', '', { name: 'x', scopes: ['read:data'] })).toMatch(
      /^environment: /,
    );
    const child = await call('POST', '', {
      key: confined.secret,
      body: {
        name: 'child',
        environment: 'test',
        scopes: ['read:data'],
        resources: ['website:w_1'],
        restrictions: { ips: ['127.0.0.1'] },
        rateLimit: { perSecond: 1, burst: 100, daily: 1000 },
        expiresAt,
      },
    });
    expect(child.status).toBe(201);
    expect(await websites(readerA.secret)).toEqual(SERVED);
  });

  it('answers 404 for an unknown id or endpoint', async () => {
    for (const [method, path] of [
      ['GET', '/key_doesnotexist'],
      ['PATCH', '/key_doesnotexist'],
      ['POST', '/key_doesnotexist/rotate'],
      ['DELETE', '/key_doesnotexist'],
      ['GET', '/key_doesnotexist/events'],
    ] as const) {
      const reply = await call(method, path, {
        key: adminA,
        body: method === 'PATCH' ? {} : undefined,
      });
      expect({ method, path, status: reply.status, code: reply.json.code }).toEqual({
        method,
        path,
        status: 404,
        code: 'NOT_FOUND',
      });
    }
    const nowhere = await call('POST', `/${readerA.id}/frobnicate`, { key: adminA });
    expect(nowhere.status).toBe(404);
    expect(nowhere.json.code).toBe('NOT_FOUND');
  });

  it('refuses callers that may not manage keys', async () => {
    const none = await call('GET', '');
    expect(none.status).toBe(401);
    expect(none.json).toEqual({
      success: false,
      error: expect.any(String),
      code: 'AUTH_REQUIRED',
    });
    expect(none.headers.get('www-authenticate')).toBe('Bearer realm="api"');

    const reader = await call('GET', '', { key: readerA.secret });
    expect(reader.status).toBe(403);
    expect(reader.json).toEqual({
      success: false,
      error: 'API key lacks the required scope: manage:keys',
      code: 'INSUFFICIENT_SCOPE',
    });
    expect(reader.headers.get('www-authenticate')).toBe(
      'Bearer realm="api", error="insufficient_scope", scope="manage:keys"',
    );

    for (const [method, path, body] of [
      ['GET', ''],
      ['POST', '', { name: 'x', scopes: ['track:events'], type: 'public' }],
      ['DELETE', `/${readerA.id}`],
    ] as const) {
      const browser = await call(method, path, { key: publicA, body });
      expect({ method, status: browser.status, body: browser.json }).toEqual({
        method,
        status: 403,
        body: { success: false, error: 'Public keys cannot manage API keys', code: 'FORBIDDEN' },
      });
    }
    const typo = `${adminA.slice(0, -1)}${adminA.endsWith('x') ? 'y' : 'x'}`;
    const badKey = await call('GET', '', { key: typo });
    expect(badKey.status).toBe(401);
    expect(badKey.json.code).toBe('INVALID_API_KEY');
    // None of the refused callers changed anything.
    expect((await call('GET', `/${readerA.id}`, { key: adminA })).json.data.revokedAt).toBeNull();
  });

  it('refuses an oversized body sent in chunks, without Content-Length', async () => {
    const text = JSON.stringify({ name: 'x', scopes: ['read:data'], pad: 'x'.repeat(200_000) });
    const chunks = new TextEncoder().encode(text);
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let at = 0; at < chunks.length; at += 16_384) {
          controller.enqueue(chunks.subarray(at, at + 16_384));
        }
        controller.close();
      },
    });
    const response = await fetch(`${app.origin}/v1/api-keys`, {
      method: 'POST',
      headers: { authorization: `Bearer ${adminA}`, 'content-type': 'application/json' },
      body,
      duplex: 'half',
    } as RequestInit);
    expect(response.status).toBe(400);
    // The unread rest of the body is still on the connection: it must not carry another request.
    expect(response.headers.get('connection')).toBe('close');
    expect(await response.json()).toEqual({
      success: false,
      error: 'the request body is too large',
      code: 'INVALID_REQUEST',
    });
    const next = await call('POST', '', { key: adminA, raw: '{"name":' });
    expect(next.status).toBe(400);
  });

  describe('malformed requests: 400 INVALID_REQUEST saying what was wrong', () => {
    const cases: Array<{
      name: string;
      method?: string;
      path?: (id: string) => string;
      raw?: string | (() => string);
      body?: unknown;
      error: string | RegExp;
    }> = [
      { name: 'invalid JSON', raw: '{"name": "x", ', error: 'the request body is not valid JSON' },
      { name: 'a JSON array', raw: '[]', error: /expected object/i },
      { name: 'no body', raw: '', error: /^name: .*; scopes: / },
      {
        name: 'an unknown field',
        body: { name: 'x', scopes: ['read:data'], colour: 'red' },
        error: /colour/,
      },
      {
        name: 'wrong types',
        body: { name: 42, scopes: 'read:data' },
        error: /^name: .*string.*; scopes: .*array/i,
      },
      { name: 'a missing name', body: { scopes: ['read:data'] }, error: /^name: / },
      {
        name: 'a past expiry',
        body: { name: 'x', scopes: ['read:data'], expiresAt: '2020-01-01T00:00:00Z' },
        error: 'expiresAt: expiresAt must be in the future',
      },
      {
        name: 'an expiry that is not a date',
        body: { name: 'x', scopes: ['read:data'], expiresAt: 'tomorrow' },
        error: /^expiresAt: /,
      },
      {
        name: 'a bad scope string',
        body: { name: 'x', scopes: ['read data'] },
        error: 'scopes.0: a scope is like read:data',
      },
      {
        name: 'a bad resource',
        body: { name: 'x', scopes: ['read:data'], resources: ['w_1'] },
        error: 'resources.0: a resource is like website:w_123 or link:*',
      },
      {
        name: 'a bad CIDR',
        body: { name: 'x', scopes: ['read:data'], restrictions: { ips: ['10.0.0.0/99'] } },
        error: /^restrictions: .*10\.0\.0\.0\/99/,
      },
      {
        name: 'a negative rate',
        body: { name: 'x', scopes: ['read:data'], rateLimit: { perSecond: -1 } },
        error: /^rateLimit\.perSecond: /,
      },
      {
        name: 'an oversized body',
        raw: () =>
          JSON.stringify({
            name: 'x',
            scopes: ['read:data'],
            metadata: { pad: 'x'.repeat(70_000) },
          }),
        error: 'the request body is too large',
      },
      {
        name: 'PATCH with an unknown field',
        method: 'PATCH',
        path: (id) => `/${id}`,
        body: { ownerId: 'org_elsewhere' },
        error: /ownerId/,
      },
      {
        name: 'PATCH with a past expiry',
        method: 'PATCH',
        path: (id) => `/${id}`,
        body: { expiresAt: '2001-01-01T00:00:00Z' },
        error: 'expiresAt: expiresAt must be in the future',
      },
      {
        name: 'PATCH with a bad scope',
        method: 'PATCH',
        path: (id) => `/${id}`,
        body: { scopes: ['read:data', ''] },
        error: /^scopes\.1: /,
      },
      {
        name: 'rotate with a negative grace period',
        method: 'POST',
        path: (id) => `/${id}/rotate`,
        body: { gracePeriodSeconds: -5 },
        error: /^gracePeriodSeconds: /,
      },
      {
        name: 'rotate with a grace period as text',
        method: 'POST',
        path: (id) => `/${id}/rotate`,
        body: { gracePeriodSeconds: '60' },
        error: /^gracePeriodSeconds: .*number/i,
      },
      {
        name: 'a list limit out of range',
        method: 'GET',
        path: () => '?limit=0',
        error: 'limit must be an integer from 1 to 1000',
      },
    ];

    it.each(cases)('$name', async (testCase) => {
      const count = () =>
        database.sql`select count(*)::int as n from keygate_api_keys where owner_id = ${orgA}`;
      // `lastUsedAt` is written in the background after reader A's own requests; the rest must hold.
      const settings = async () => {
        const { lastUsedAt: _used, ...key } = await keygate.keys.get(readerA.id);
        return key;
      };
      const [keysBefore, before] = await Promise.all([count(), settings()]);
      const raw = typeof testCase.raw === 'function' ? testCase.raw() : testCase.raw;
      const reply = await call(testCase.method ?? 'POST', testCase.path?.(readerA.id) ?? '', {
        key: adminA,
        raw,
        body: testCase.body,
      });
      expect(reply.status).toBe(400);
      expect(reply.json).toEqual({
        success: false,
        error: expect.any(String),
        code: 'INVALID_REQUEST',
      });
      if (typeof testCase.error === 'string') expect(reply.json.error).toBe(testCase.error);
      else expect(reply.json.error).toMatch(testCase.error);
      // Nothing was changed by a refused request.
      expect(await settings()).toEqual(before);
      expect(await count()).toEqual(keysBefore);
    });
  });
});
