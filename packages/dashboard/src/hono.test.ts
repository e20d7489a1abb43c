import { createKeygate, type Keygate } from '@keygate/core';
import { Hono } from 'hono';
import { afterEach, describe, expect, it } from 'vitest';
import { keyDashboard } from './hono.js';

const open: Keygate[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((keygate) => keygate.close()));
});

function setup() {
  const keygate = createKeygate({ authFailureLimit: false });
  open.push(keygate);
  const app = new Hono();
  app.use(keyDashboard({ keygate, getIp: () => '127.0.0.1' }));
  app.get('/v1/ping', (c) => c.text('pong'));
  return { keygate, app };
}

const form = (key: string, origin: string) => ({
  method: 'POST',
  headers: {
    origin,
    'sec-fetch-site': 'same-origin',
    'content-type': 'application/x-www-form-urlencoded',
  },
  body: new URLSearchParams({ key }).toString(),
});

describe('@keygate/dashboard/hono', () => {
  it('serves the page, its sign-in and sign-out, and lets every other request go on', async () => {
    const { app } = setup();
    const page = await app.request('/dashboard/keys/key_1');
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toContain("default-src 'none'");
    expect(await page.text()).toContain('src="/dashboard/assets/main.');
    expect((await app.request('/login')).status).toBe(200);
    expect((await app.request('/logout')).status).toBe(405);
    expect(await (await app.request('/v1/ping')).text()).toBe('pong');
    expect((await app.request('/dashboardx')).status).toBe(404);
  });

  it('signs in over the scheme of the request URL: __Host- and Secure over HTTPS', async () => {
    const { app, keygate } = setup();
    const admin = await keygate.keys.create({ name: 'admin', scopes: ['manage:keys'] });
    const secure = await app.request(
      'https://keys.example.com/login',
      form(admin.secret, 'https://keys.example.com'),
    );
    expect(secure.status).toBe(303);
    expect(secure.headers.get('location')).toBe('/dashboard');
    expect(secure.headers.get('set-cookie')).toMatch(/^__Host-keygate_session=\w{64};.*; Secure;/);
    const plain = await app.request('/login', form(admin.secret, 'http://localhost'));
    expect(plain.headers.get('set-cookie')).toMatch(/^keygate_session=\w{64}; Path=\/;/);
    expect(plain.headers.get('set-cookie')).not.toContain('Secure');
  });

  it('takes the origin from getOrigin behind a TLS-terminating proxy', async () => {
    const keygate = createKeygate({ authFailureLimit: false });
    open.push(keygate);
    const app = new Hono();
    app.use(keyDashboard({ keygate, getOrigin: () => 'https://keys.example.com' }));
    const admin = await keygate.keys.create({ name: 'admin', scopes: ['manage:keys'] });
    const signedIn = await app.request('/login', form(admin.secret, 'https://keys.example.com'));
    expect(signedIn.headers.get('set-cookie')).toMatch(
      /^__Host-keygate_session=\w{64};.*; Secure;/,
    );
  });

  it('links from where a sub-app is mounted', async () => {
    const keygate = createKeygate();
    open.push(keygate);
    const admin = new Hono();
    admin.use(keyDashboard({ keygate }));
    const app = new Hono().route('/admin', admin);
    const html = await (await app.request('/admin/dashboard')).text();
    expect(html).toContain('src="/admin/dashboard/assets/main.');
    expect(html).toContain('"signInPath":"/admin/login"');
  });

  it('takes a form a middleware before it has already read', async () => {
    const { keygate } = setup();
    const app = new Hono();
    app.use(async (c, next) => {
      if (c.req.method === 'POST') await c.req.text();
      await next();
    });
    app.use(keyDashboard({ keygate, getIp: () => '127.0.0.1' }));
    const admin = await keygate.keys.create({ name: 'admin', scopes: ['manage:keys'] });
    const signedIn = await app.request('/login', form(admin.secret, 'http://localhost'));
    expect(signedIn.status).toBe(303);
  });
});
