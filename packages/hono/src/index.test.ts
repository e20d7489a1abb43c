import type { AddressInfo } from 'node:net';
import { type ServerType, serve } from '@hono/node-server';
import { Hono } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { requestId } from 'hono/request-id';
import { afterEach, describe, expect, it } from 'vitest';
import {
  apiKeyAuth,
  apiKeyRoutes,
  clientIp,
  createKeygate,
  type Keygate,
  KeygateConfigError,
  type KeygateOptions,
  MemoryAuditSink,
  requireScope,
} from './index.js';

const open: Keygate[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((keygate) => keygate.close()));
});

/** An app with one protected route; `served` lists what the handler saw, so a test can tell it never ran. */
async function guardedApp(options: KeygateOptions = {}, configure?: (app: Hono) => void) {
  const keygate = createKeygate({ authFailureLimit: false, ...options });
  open.push(keygate);
  const reader = await keygate.keys.create({
    name: 'reader',
    scopes: ['read:data'],
    resources: ['website:w_1'],
  });
  const served: Array<{ id: string; sameAuthentication: boolean }> = [];
  const app = new Hono();
  configure?.(app);
  app.use('/v1/*', apiKeyAuth({ keygate }));
  app.get(
    '/v1/websites/:websiteId/analytics',
    requireScope('read:data', { resource: 'website:{websiteId}' }),
    (c) => {
      const apiKey = c.get('apiKey');
      served.push({ id: apiKey.id, sameAuthentication: c.get('keygate').principal === apiKey });
      return c.json({ success: true, data: { key: apiKey.id, environment: apiKey.environment } });
    },
  );
  app.post('/v1/llm/traces', requireScope('write:llm'), (c) => {
    served.push({ id: c.get('apiKey').id, sameAuthentication: true });
    return c.json({ success: true }, 201);
  });
  return { app, keygate, reader, served };
}

/** The key with its last character changed: a typo, which its checksum catches. */
const tampered = (secret: string) => secret.slice(0, -1) + (secret.endsWith('0') ? '1' : '0');

describe('@keygate/hono apiKeyAuth and requireScope', () => {
  it("serves a key that holds the scope and resource: c.get('apiKey'), the rate-limit headers", async () => {
    const { app, reader, served } = await guardedApp();
    const response = await app.request('/v1/websites/w_1/analytics', {
      headers: { 'x-api-key': reader.secret },
    });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({
      success: true,
      data: { key: reader.key.id, environment: 'live' },
    });
    expect(response.headers.get('x-ratelimit-remaining')).toBe('9999');
    expect(response.headers.get('ratelimit-policy')).toMatch(/^"burst";q=10000;w=10, "daily"/);
    expect(served).toEqual([{ id: reader.key.id, sameAuthentication: true }]);
  });

  it('401 without a key or with a bad one: JSON error and Bearer challenge; the handler does not run', async () => {
    const { app, reader, served } = await guardedApp();
    const missing = await app.request('/v1/websites/w_1/analytics');
    expect(missing.status).toBe(401);
    expect(await missing.json()).toEqual({
      success: false,
      error: 'Authentication required',
      code: 'AUTH_REQUIRED',
    });
    expect(missing.headers.get('www-authenticate')).toBe('Bearer realm="api"');
    expect(missing.headers.get('content-type')).toMatch(/^application\/json/);
    const invalid = await app.request('/v1/websites/w_1/analytics', {
      headers: { authorization: `Bearer ${tampered(reader.secret)}` },
    });
    expect(invalid.status).toBe(401);
    expect(invalid.headers.get('www-authenticate')).toBe(
      'Bearer realm="api", error="invalid_token"',
    );
    expect(served).toEqual([]);
  });

  it('403 for a missing scope or resource, with the rate-limit headers; the handler does not run', async () => {
    const { app, reader, served } = await guardedApp();
    const scope = await app.request('/v1/llm/traces', {
      method: 'POST',
      headers: { 'x-api-key': reader.secret },
    });
    expect(scope.status).toBe(403);
    expect(((await scope.json()) as { code: string }).code).toBe('INSUFFICIENT_SCOPE');
    expect(scope.headers.get('www-authenticate')).toContain('scope="write:llm"');
    expect(scope.headers.get('x-ratelimit-remaining')).toBe('9999');
    const resource = await app.request('/v1/websites/w_2/analytics', {
      headers: { 'x-api-key': reader.secret },
    });
    expect(resource.status).toBe(403);
    expect(((await resource.json()) as { code: string }).code).toBe('ACCESS_DENIED');
    expect(served).toEqual([]);
  });

  it('429 with Retry-After once the key’s burst is spent', async () => {
    const { app, reader, served } = await guardedApp({
      tiers: { secret: { burst: 1, perSecond: 0.01 } },
    });
    const headers = { 'x-api-key': reader.secret };
    expect((await app.request('/v1/websites/w_1/analytics', { headers })).status).toBe(200);
    const limited = await app.request('/v1/websites/w_1/analytics', { headers });
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(served).toHaveLength(1);
  });

  it('failures are HTTPExceptions holding the response, which app.onError sees', async () => {
    const seen: Array<{ status: number; code: string }> = [];
    const { app, reader } = await guardedApp({}, (app) =>
      app.onError(async (error, c) => {
        if (!(error instanceof HTTPException)) return c.text('unexpected', 500);
        const response = error.getResponse();
        seen.push({
          status: error.status,
          code: ((await response.clone().json()) as { code: string }).code,
        });
        return response;
      }),
    );
    const missing = await app.request('/v1/websites/w_1/analytics');
    const denied = await app.request('/v1/websites/w_2/analytics', {
      headers: { 'x-api-key': reader.secret },
    });
    expect([missing.status, denied.status]).toEqual([401, 403]);
    expect(denied.headers.get('x-ratelimit-limit')).toBe('10000');
    expect(seen).toEqual([
      { status: 401, code: 'AUTH_REQUIRED' },
      { status: 403, code: 'ACCESS_DENIED' },
    ]);
  });

  it('a guard on a route outside apiKeyAuth answers 401 instead of running the handler', async () => {
    let ran = false;
    const app = new Hono();
    app.get('/open', requireScope('read:data'), (c) => {
      ran = true;
      return c.json({});
    });
    const response = await app.request('/open');
    expect(response.status).toBe(401);
    expect(((await response.json()) as { code: string }).code).toBe('AUTH_REQUIRED');
    expect(ran).toBe(false);
  });

  it('records Hono’s request id (the requestId middleware’s) in the audit trail', async () => {
    const sink = new MemoryAuditSink();
    const { app, reader, keygate } = await guardedApp({ auditSinks: [sink] }, (app) =>
      app.use(requestId({ generator: () => 'req-from-hono-1' })),
    );
    const denied = await app.request('/v1/websites/w_2/analytics', {
      headers: { 'x-api-key': reader.secret },
    });
    expect(denied.headers.get('x-request-id')).toBe('req-from-hono-1');
    await keygate.audit.flush();
    const [event] = await sink.query({ keyId: reader.key.id });
    expect(event).toMatchObject({
      action: 'resource.checked',
      outcome: 'failure',
      requestId: 'req-from-hono-1',
    });
  });
});

/** `path` of `app` served by `@hono/node-server` on a free port, with `secret`. */
async function overNode(app: Hono, path: string, secret: string): Promise<Response> {
  const server = await new Promise<ServerType>((resolve) => {
    const started = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () =>
      resolve(started),
    );
  });
  try {
    const { port } = server.address() as AddressInfo;
    const response = await fetch(`http://127.0.0.1:${port}${path}`, {
      headers: { 'x-api-key': secret },
    });
    await response.clone().arrayBuffer();
    return response;
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
}

async function appWithKey() {
  const keygate = createKeygate({ authFailureLimit: false });
  open.push(keygate);
  const { secret } = await keygate.keys.create({ name: 'k', scopes: ['read:data'] });
  const app = new Hono();
  app.use('*', apiKeyAuth({ keygate }));
  app.get('/json', requireScope('read:data'), (c) => c.json({ success: true }));
  app.get('/raw', requireScope('read:data'), () => new Response('raw body'));
  app.get('/own', requireScope('read:data'), (c) => {
    c.header('X-RateLimit-Limit', 'own');
    return c.json({ success: true }, 200, { 'x-handler': 'kept' });
  });
  app.get('/denied', requireScope('write:llm'), (c) => c.json({ success: true }));
  return { app, secret, keygate };
}

describe('@keygate/hono rate-limit headers', () => {
  it.each(['/json', '/raw', '/denied'])('are on the response of %s, once', async (path) => {
    const { app, secret } = await appWithKey();
    const response = await app.request(path, { headers: { 'x-api-key': secret } });
    expect(response.headers.get('x-ratelimit-limit')).toBe('10000');
    expect(response.headers.get('x-ratelimit-remaining')).toBe('9999');
    expect(response.headers.get('ratelimit-policy')).toMatch(/^"burst";q=10000;w=10, "daily"/);
  });

  it.each(['/json', '/raw', '/denied'])(
    'are on the response of %s under @hono/node-server (set on Node’s response), once',
    async (path) => {
      const { app, secret } = await appWithKey();
      const response = await overNode(app, path, secret);
      expect(response.headers.get('x-ratelimit-limit')).toBe('10000');
      expect(response.headers.get('x-ratelimit-remaining')).toBe('9999');
      expect(response.headers.get('ratelimit-policy')).toMatch(/^"burst";q=10000;w=10, "daily"/);
      expect(response.status).toBe(path === '/denied' ? 403 : 200);
    },
  );

  it('under @hono/node-server, give way to a header the handler sets, and keep its own', async () => {
    const { app, secret } = await appWithKey();
    const response = await overNode(app, '/own', secret);
    expect(response.headers.get('x-ratelimit-limit')).toBe('own');
    expect(response.headers.get('x-ratelimit-remaining')).toBe('9999');
    expect(response.headers.get('x-handler')).toBe('kept');
    expect(await response.json()).toEqual({ success: true });
  });

  it('leave a handler-built Response intact', async () => {
    const { app, secret } = await appWithKey();
    const response = await app.request('/raw', { headers: { 'x-api-key': secret } });
    expect(response.status).toBe(200);
    expect(await response.text()).toBe('raw body');
  });
});

describe('clientIp', () => {
  /** The IP `clientIp(options)` finds for a request from `socket` carrying `forwarded`. */
  async function ipFor(
    options: Parameters<typeof clientIp>[0],
    socket: string | undefined,
    forwarded?: string,
  ): Promise<string | undefined> {
    const getIp = clientIp({ getConnInfo: () => ({ remote: { address: socket } }), ...options });
    const app = new Hono();
    app.get('/', (c) => c.json({ ip: getIp(c) ?? null }));
    const response = await app.request('/', {
      headers: forwarded === undefined ? {} : { 'x-forwarded-for': forwarded },
    });
    return ((await response.json()) as { ip: string | null }).ip ?? undefined;
  }

  it('without proxy trust, is the connection’s address whatever X-Forwarded-For says', async () => {
    expect(await ipFor({}, '198.51.100.1', '10.0.0.1')).toBe('198.51.100.1');
    expect(await ipFor({ trustProxy: 0 }, '198.51.100.1', '10.0.0.1')).toBe('198.51.100.1');
  });

  it('with n trusted hops, is the n-th address from the right', async () => {
    const forwarded = '10.0.0.1, 203.0.113.5, 192.0.2.9';
    expect(await ipFor({ trustProxy: 1 }, '127.0.0.1', forwarded)).toBe('192.0.2.9');
    expect(await ipFor({ trustProxy: 2 }, '127.0.0.1', forwarded)).toBe('203.0.113.5');
    expect(await ipFor({ trustProxy: 9 }, '127.0.0.1', forwarded)).toBe('10.0.0.1');
    expect(await ipFor({ trustProxy: 1 }, '127.0.0.1')).toBe('127.0.0.1');
  });

  it('with trusted proxy addresses, is the rightmost address that is not one', async () => {
    const trustProxy = ['127.0.0.1', '10.0.0.0/8'];
    expect(await ipFor({ trustProxy }, '127.0.0.1', '203.0.113.5, 10.1.1.1')).toBe('203.0.113.5');
    expect(await ipFor({ trustProxy }, '127.0.0.1', '10.9.9.9, 203.0.113.5')).toBe('203.0.113.5');
    // A client that is no trusted proxy is not believed about who it forwards for.
    expect(await ipFor({ trustProxy }, '198.51.100.1', '10.0.0.1')).toBe('198.51.100.1');
  });

  it('knows no IP when the runtime gives none', async () => {
    expect(await ipFor({ trustProxy: 1 }, undefined, '203.0.113.5')).toBeUndefined();
  });

  it('refuses a bad trust setting when created', () => {
    expect(() => clientIp({ trustProxy: -1 })).toThrow(KeygateConfigError);
    expect(() => clientIp({ trustProxy: 1.5 })).toThrow(KeygateConfigError);
    expect(() => clientIp({ trustProxy: ['not-an-ip'] })).toThrow(/trustProxy/);
  });
});

describe('apiKeyRoutes', () => {
  it('routes on the path as sent: an encoded slash in an id reaches no other route', async () => {
    const keygate = createKeygate({ authFailureLimit: false });
    open.push(keygate);
    const admin = await keygate.keys.create({ name: 'admin', scopes: ['manage:keys'] });
    const app = new Hono();
    app.route('/v1/api-keys', apiKeyRoutes({ keygate }));
    const headers = { 'x-api-key': admin.secret };
    const shown = await app.request(`/v1/api-keys/${admin.key.id}`, { headers });
    expect(shown.status).toBe(200);
    expect(((await shown.json()) as { data: { id: string } }).data.id).toBe(admin.key.id);
    const encoded = await app.request(`/v1/api-keys/${admin.key.id}%2Frotate`, {
      method: 'POST',
      headers,
    });
    expect(encoded.status).toBe(404);
    expect(((await encoded.json()) as { code: string }).code).toBe('NOT_FOUND');
    const anonymous = await app.request('/v1/api-keys');
    expect(anonymous.status).toBe(401);
  });

  it('takes a body a middleware mounted before it has already read', async () => {
    const keygate = createKeygate({ authFailureLimit: false });
    open.push(keygate);
    const { secret } = await keygate.keys.create({
      name: 'admin',
      scopes: ['manage:keys', 'read:data'],
    });
    const app = new Hono();
    app.use('/v1/api-keys', async (c, next) => {
      await c.req.json();
      await next();
    });
    app.route('/v1/api-keys', apiKeyRoutes({ keygate }));
    const response = await app.request('/v1/api-keys', {
      method: 'POST',
      headers: { 'x-api-key': secret, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'child', scopes: ['read:data'] }),
    });
    expect(response.status).toBe(201);
    expect(await response.json()).toMatchObject({ data: { name: 'child' } });
  });
});
