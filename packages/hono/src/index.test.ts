import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import {
  apiKeyAuth,
  apiKeyRoutes,
  clientIp,
  createKeygate,
  KeygateConfigError,
  requireScope,
} from './index.js';

async function appWithKey() {
  const keygate = createKeygate({ authFailureLimit: false });
  const { secret } = await keygate.keys.create({ name: 'k', scopes: ['read:data'] });
  const app = new Hono();
  app.use('*', apiKeyAuth({ keygate }));
  app.get('/json', requireScope('read:data'), (c) => c.json({ success: true }));
  app.get('/raw', requireScope('read:data'), () => new Response('raw body'));
  app.get('/denied', requireScope('write:llm'), (c) => c.json({ success: true }));
  return { app, secret, keygate };
}

describe('@keygate/hono rate-limit headers', () => {
  it.each(['/json', '/raw', '/denied'])('are on the response of %s, once', async (path) => {
    const { app, secret, keygate } = await appWithKey();
    const response = await app.request(path, { headers: { 'x-api-key': secret } });
    expect(response.headers.get('x-ratelimit-limit')).toBe('10000');
    expect(response.headers.get('x-ratelimit-remaining')).toBe('9999');
    expect(response.headers.get('ratelimit-policy')).toMatch(/^"burst";q=10000;w=10, "daily"/);
    await keygate.close();
  });

  it('leave a handler-built Response intact', async () => {
    const { app, secret, keygate } = await appWithKey();
    const response = await app.request('/raw', { headers: { 'x-api-key': secret } });
    expect(response.status).toBe(200);
    expect(await response.text()).toBe('raw body');
    await keygate.close();
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
  it('takes a body a middleware mounted before it has already read', async () => {
    const keygate = createKeygate({ authFailureLimit: false });
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
    await keygate.close();
  });
});
