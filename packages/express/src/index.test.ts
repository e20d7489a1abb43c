import express, { type Express } from 'express';
import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import {
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
async function appWith(options: KeygateOptions = {}, configure?: (app: Express) => void) {
  const keygate = createKeygate({ authFailureLimit: false, ...options });
  open.push(keygate);
  const reader = await keygate.keys.create({
    name: 'reader',
    scopes: ['read:data'],
    resources: ['website:w_1'],
  });
  const admin = await keygate.keys.create({ name: 'admin', scopes: ['manage:keys', 'read:data'] });
  const served: Array<{ id?: string; sameAuthentication: boolean }> = [];
  const app = express();
  configure?.(app);
  app.use('/v1/api-keys', apiKeyRoutes({ keygate }));
  app.use('/v1', apiKeyAuth({ keygate }));
  app.get(
    '/v1/websites/:websiteId/analytics',
    requireScope('read:data', { resource: 'website:{websiteId}' }),
    (req, res) => {
      served.push({
        id: req.apiKey?.id,
        sameAuthentication: req.keygate?.principal === req.apiKey,
      });
      res.json({
        success: true,
        data: { key: req.apiKey?.id, environment: req.apiKey?.environment },
      });
    },
  );
  app.post('/v1/llm/traces', requireScope('write:llm'), (_req, res) => {
    served.push({ sameAuthentication: true });
    res.status(201).json({ success: true });
  });
  return { app, keygate, reader, admin, served };
}

describe('@keygate/express apiKeyAuth and requireScope', () => {
  it('serves a key that holds the scope and resource: req.apiKey, the rate-limit headers', async () => {
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
    expect(response.headers['ratelimit-policy']).toMatch(/^"burst";q=10000;w=10, "daily"/);
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
    expect(response.headers['content-type']).toMatch(/^application\/json/);
    expect(served).toEqual([]);
  });

  it('401 for an unknown key, whatever the source', async () => {
    const { app, reader, served } = await appWith();
    const unknown = tampered(reader.secret);
    const response = await request(app)
      .get('/v1/websites/w_1/analytics')
      .set('authorization', `Bearer ${unknown}`)
      .expect(401);
    expect(response.body.code).toBe('INVALID_API_KEY');
    expect(response.headers['www-authenticate']).toBe('Bearer realm="api", error="invalid_token"');
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
    expect(resource.body).toEqual({
      success: false,
      error: 'Access to this resource is denied',
      code: 'ACCESS_DENIED',
    });
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
    expect(limited.headers['x-ratelimit-remaining']).toBe('0');
    expect(served).toHaveLength(1);
  });

  it('a guard on a route outside apiKeyAuth answers 401 instead of running the handler', async () => {
    const keygate = createKeygate();
    open.push(keygate);
    let ran = false;
    const app = express();
    app.get('/open', requireScope('read:data'), (_req, res) => {
      ran = true;
      res.json({});
    });
    const response = await request(app).get('/open').expect(401);
    expect(response.body.code).toBe('AUTH_REQUIRED');
    expect(ran).toBe(false);
  });

  it('the client IP is req.ip, so Express’s trust proxy decides who the client is', async () => {
    const { app, keygate } = await appWith({}, (app) => app.set('trust proxy', 1));
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

describe('@keygate/express apiKeyRoutes', () => {
  it('creates a key for an admin, reading the body itself or after express.json()', async () => {
    for (const parse of [false, true]) {
      const { app, admin, keygate } = await appWith({}, (app) => {
        if (parse) app.use(express.json());
      });
      const created = await request(app)
        .post('/v1/api-keys')
        .set('x-api-key', admin.secret)
        .send({ name: 'child', scopes: ['read:data'] })
        .expect(201);
      expect(created.body.data).toMatchObject({ name: 'child', scopes: ['read:data'] });
      expect(created.body.data.secret).toMatch(/^sk_live_/);
      expect(created.headers['x-ratelimit-limit']).toBe('10000');
      expect(await keygate.keys.get(created.body.data.id)).toMatchObject({ name: 'child' });
    }
  });

  it('refuses callers who are not admins, and bodies that are not JSON (closing the connection)', async () => {
    const { app, reader, admin } = await appWith();
    const anonymous = await request(app).get('/v1/api-keys').expect(401);
    expect(anonymous.body.code).toBe('AUTH_REQUIRED');
    const notAdmin = await request(app).get('/v1/api-keys').set('x-api-key', reader.secret);
    expect(notAdmin.status).toBe(403);
    expect(notAdmin.body.code).toBe('INSUFFICIENT_SCOPE');
    const form = await request(app)
      .post('/v1/api-keys')
      .set('x-api-key', admin.secret)
      .type('form')
      .send('name=child')
      .expect(415);
    expect(form.body.code).toBe('UNSUPPORTED_MEDIA_TYPE');
    expect(form.headers.connection).toBe('close');
  });
});
