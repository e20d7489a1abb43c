import Router from '@koa/router';
import Koa from 'koa';
import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type ApiKeyState,
  apiKeyAuth,
  apiKeyRoutes,
  createKeygate,
  type Keygate,
  type KeygateOptions,
  requireScope,
} from './index.js';

const open: Keygate[] = [];

/** The key with its last character changed: a typo, which its checksum catches. */
const tampered = (secret: string) => secret.slice(0, -1) + (secret.endsWith('0') ? '1' : '0');
afterEach(async () => {
  await Promise.all(open.splice(0).map((keygate) => keygate.close()));
});

/** An app with one protected route; `served` lists what the handler saw, so a test can tell it never ran. */
async function appWith(options: KeygateOptions = {}, configure?: (app: Koa) => void) {
  const keygate = createKeygate({ authFailureLimit: false, ...options });
  open.push(keygate);
  const reader = await keygate.keys.create({
    name: 'reader',
    scopes: ['read:data'],
    resources: ['website:w_1'],
  });
  const admin = await keygate.keys.create({ name: 'admin', scopes: ['manage:keys', 'read:data'] });
  const served: Array<{ id: string; sameAuthentication: boolean }> = [];
  const app = new Koa();
  configure?.(app);
  const router = new Router<ApiKeyState>();
  router.get(
    '/v1/websites/:websiteId/analytics',
    requireScope('read:data', { resource: 'website:{websiteId}' }),
    (ctx) => {
      const { apiKey, keygate: authentication } = ctx.state;
      served.push({ id: apiKey.id, sameAuthentication: authentication.principal === apiKey });
      ctx.body = { success: true, data: { key: apiKey.id, environment: apiKey.environment } };
    },
  );
  router.post('/v1/llm/traces', requireScope('write:llm'), (ctx) => {
    served.push({ id: ctx.state.apiKey.id, sameAuthentication: true });
    ctx.status = 201;
  });
  app.use(apiKeyRoutes({ keygate }));
  app.use(apiKeyAuth({ keygate }));
  app.use(router.routes());
  return { app: app.callback(), keygate, reader, admin, served };
}

describe('@keygate/koa apiKeyAuth and requireScope', () => {
  it('serves a key that holds the scope and resource: ctx.state.apiKey, the rate-limit headers', async () => {
    const { app, reader, served } = await appWith();
    const response = await request(app)
      .get('/v1/websites/w_1/analytics')
      .set('x-api-key', reader.secret)
      .expect(200);
    expect(response.body).toEqual({
      success: true,
      data: { key: reader.key.id, environment: 'live' },
    });
    expect(response.headers['x-ratelimit-limit']).toBe('10000');
    expect(response.headers['x-ratelimit-remaining']).toBe('9999');
    expect(response.headers.ratelimit).toMatch(/^"burst";r=9999;t=1, "daily";r=9999999;t=\d+$/);
    expect(served).toEqual([{ id: reader.key.id, sameAuthentication: true }]);
  });

  it('401 without a key: JSON error and Bearer challenge; the handler does not run', async () => {
    const { app, served } = await appWith();
    const response = await request(app).get('/v1/websites/w_1/analytics').expect(401);
    expect(response.body).toEqual({
      success: false,
      error: 'Authentication required',
      code: 'AUTH_REQUIRED',
    });
    expect(response.headers['www-authenticate']).toBe('Bearer realm="api"');
    expect(served).toEqual([]);
  });

  it('400 for two different keys; 401 for a key in the query string that does not verify', async () => {
    const { app, reader, admin, served } = await appWith();
    const conflicting = await request(app)
      .get('/v1/websites/w_1/analytics')
      .set('x-api-key', reader.secret)
      .set('authorization', `Bearer ${admin.secret}`)
      .expect(400);
    expect(conflicting.body.code).toBe('INVALID_REQUEST');
    const invalid = await request(app)
      .get(`/v1/websites/w_1/analytics?api_key=${tampered(reader.secret)}`)
      .expect(401);
    expect(invalid.body.code).toBe('INVALID_API_KEY');
    expect(served).toEqual([]);
  });

  it('403 for a missing scope or resource, with the rate-limit headers; the handler does not run', async () => {
    const { app, reader, served } = await appWith();
    const scope = await request(app)
      .post('/v1/llm/traces')
      .set('x-api-key', reader.secret)
      .expect(403);
    expect(scope.body.code).toBe('INSUFFICIENT_SCOPE');
    expect(scope.headers['www-authenticate']).toContain('scope="write:llm"');
    expect(scope.headers['x-ratelimit-remaining']).toBe('9999');
    const resource = await request(app)
      .get('/v1/websites/w_2/analytics')
      .set('x-api-key', reader.secret)
      .expect(403);
    expect(resource.body.code).toBe('ACCESS_DENIED');
    expect(served).toEqual([]);
  });

  it('429 with Retry-After once the key’s burst is spent', async () => {
    const { app, reader, served } = await appWith({
      tiers: { secret: { burst: 1, perSecond: 0.01 } },
    });
    await request(app)
      .get('/v1/websites/w_1/analytics')
      .set('x-api-key', reader.secret)
      .expect(200);
    const limited = await request(app)
      .get('/v1/websites/w_1/analytics')
      .set('x-api-key', reader.secret)
      .expect(429);
    expect(limited.body.code).toBe('RATE_LIMITED');
    expect(Number(limited.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(served).toHaveLength(1);
  });

  it('a guard on a route outside apiKeyAuth answers 401 instead of running the handler', async () => {
    const keygate = createKeygate();
    open.push(keygate);
    let ran = false;
    const app = new Koa();
    app.use(requireScope('read:data'));
    app.use((ctx) => {
      ran = true;
      ctx.body = {};
    });
    const response = await request(app.callback()).get('/open').expect(401);
    expect(response.body.code).toBe('AUTH_REQUIRED');
    expect(ran).toBe(false);
  });

  it('the client IP is ctx.ip, so Koa’s app.proxy decides who the client is', async () => {
    const { app, keygate } = await appWith({}, (app) => {
      app.proxy = true;
    });
    const office = await keygate.keys.create({
      name: 'office',
      scopes: ['read:data'],
      restrictions: { ips: ['203.0.113.7'] },
    });
    await request(app)
      .get('/v1/websites/w_1/analytics')
      .set('x-api-key', office.secret)
      .set('x-forwarded-for', '203.0.113.7')
      .expect(200);
    const elsewhere = await request(app)
      .get('/v1/websites/w_1/analytics')
      .set('x-api-key', office.secret)
      .set('x-forwarded-for', '198.51.100.1')
      .expect(403);
    expect(elsewhere.body.code).toBe('FORBIDDEN');
  });
});

describe('@keygate/koa apiKeyRoutes', () => {
  it('creates a key for an admin, reading the body itself or as a body parser left it', async () => {
    for (const parsed of [false, true]) {
      const { app, admin, keygate } = await appWith({}, (app) => {
        if (!parsed) return;
        app.use(async (ctx, next) => {
          const chunks: Buffer[] = [];
          for await (const chunk of ctx.req) chunks.push(chunk as Buffer);
          (ctx.request as { body?: unknown }).body = JSON.parse(Buffer.concat(chunks).toString());
          await next();
        });
      });
      const created = await request(app)
        .post('/v1/api-keys')
        .set('x-api-key', admin.secret)
        .send({ name: 'child', scopes: ['read:data'] })
        .expect(201);
      expect(created.body.data).toMatchObject({ name: 'child', scopes: ['read:data'] });
      expect(created.body.data.secret).toMatch(/^sk_live_/);
      expect(await keygate.keys.get(created.body.data.id)).toMatchObject({ name: 'child' });
    }
  });

  it('answers only under its prefix; refuses non-admins and non-JSON bodies', async () => {
    const { app, reader, admin } = await appWith();
    expect((await request(app).get('/v1/api-keys-other')).body.code).toBe('AUTH_REQUIRED');
    const notAdmin = await request(app).get('/v1/api-keys').set('x-api-key', reader.secret);
    expect(notAdmin.status).toBe(403);
    expect(notAdmin.body.code).toBe('INSUFFICIENT_SCOPE');
    const unknown = await request(app).get('/v1/api-keys/key_nope').set('x-api-key', admin.secret);
    expect(unknown.status).toBe(404);
    expect(unknown.body).toEqual({ success: false, error: 'API key not found', code: 'NOT_FOUND' });
    const text = await request(app)
      .post('/v1/api-keys')
      .set('x-api-key', admin.secret)
      .type('text')
      .send('{}')
      .expect(415);
    expect(text.body.code).toBe('UNSUPPORTED_MEDIA_TYPE');
  });
});
