import {
  createKeygate,
  type Keygate,
  KeygateConfigError,
  type KeygateOptions,
  MemoryKeyStore,
} from '@keygate/core';
import { afterEach, describe, expect, it } from 'vitest';
import { createKeyPage, type KeyDashboardOptions } from './dashboard.js';
import type { DashboardConfig, PageRequest } from './shell.js';

const open: Keygate[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((keygate) => keygate.close()));
});

function keygate(options: KeygateOptions = {}): Keygate {
  const created = createKeygate({ authFailureLimit: false, ...options });
  open.push(created);
  return created;
}

function page(options: Partial<KeyDashboardOptions> = {}) {
  return createKeyPage({ keygate: options.keygate ?? keygate(), ...options });
}

function request(
  path: string,
  { method = 'GET', base = '', headers = {}, body = '', origin = 'http://127.0.0.1:3000' } = {},
): PageRequest {
  return {
    request: { method, url: `${base}${path}`, headers: new Headers(headers), ip: '127.0.0.1' },
    path,
    base,
    origin,
    body: () => body,
  };
}

function configOf(html: string): DashboardConfig {
  const json =
    /<script type="application\/json" id="keygate-dashboard-config">(.*?)<\/script>/s.exec(
      html,
    )?.[1];
  return JSON.parse(json ?? 'null') as DashboardConfig;
}

const SAME_ORIGIN = {
  'sec-fetch-site': 'same-origin',
  'content-type': 'application/x-www-form-urlencoded',
};

async function signIn(handler: ReturnType<typeof page>, key: string, origin?: string) {
  return handler.handle(
    request('/login', {
      method: 'POST',
      headers: SAME_ORIGIN,
      body: new URLSearchParams({ key }).toString(),
      ...(origin ? { origin } : {}),
    }),
  );
}

describe('createKeyPage: the page', () => {
  it('serves the page with a strict CSP, no caching, and its configuration', async () => {
    const handler = page({
      keygate: keygate({ publicScopes: ['track:events'], environments: ['live'] }),
      scopes: ['read:data', 'track:events'],
      signInUrl: '/account/login',
    });
    const response = await handler.handle(request('/dashboard'));
    expect(response.status).toBe(200);
    expect(response.headers).toMatchObject({
      'Content-Type': 'text/html; charset=utf-8',
      'Cache-Control': 'no-store',
      'X-Content-Type-Options': 'nosniff',
      'Referrer-Policy': 'no-referrer',
      'Content-Security-Policy':
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    });
    expect(response.headers['Set-Cookie']).toBeUndefined();
    const html = response.body;
    expect(html).toMatch(
      /<script type="module" src="\/dashboard\/assets\/main\.\w+\.js"><\/script>/,
    );
    expect(html).toMatch(/<link rel="stylesheet" href="\/dashboard\/assets\/main\.\w+\.css">/);
    expect(html).not.toMatch(/<script>|style=/);
    expect(configOf(html)).toEqual({
      title: 'API keys',
      mountPath: '/dashboard',
      managementPath: '/v1/api-keys',
      scopes: ['read:data', 'track:events'],
      publicScopes: ['track:events'],
      environments: ['live'],
      adminScope: 'manage:keys',
      signInUrl: '/account/login',
      pageSessions: { signInPath: '/login', signOutPath: '/logout' },
      session: null,
      view: 'page',
      message: null,
    });
  });

  it('owns its path, below it, its sign-in and sign-out, and nothing else', () => {
    const handler = page({ path: '/admin/keys', signInPath: '/admin/in', signOutPath: '/out' });
    for (const path of ['/admin/keys', '/admin/keys/', '/admin/keys/keys/key_1', '/admin/in']) {
      expect(handler.owns(path), path).toBe(true);
    }
    for (const path of ['/admin/keysmith', '/admin', '/login', '/v1/api-keys', '/', '/out/x']) {
      expect(handler.owns(path), path).toBe(false);
    }
    expect(handler.owns('/out')).toBe(true);
  });

  it('serves the same page at any path below it (deep links), under any mount point', async () => {
    const handler = page({ path: '/keys' });
    for (const [base, path] of [
      ['/admin', '/keys'],
      ['/admin', '/keys/keys/key_1'],
    ] as const) {
      const html = (await handler.handle(request(path, { base }))).body;
      expect(html).toContain('src="/admin/keys/assets/main.');
      expect(configOf(html)).toMatchObject({
        mountPath: '/admin/keys',
        pageSessions: { signInPath: '/admin/login', signOutPath: '/admin/logout' },
      });
    }
  });

  it('without page sessions, the page keeps a pasted key: no sign-in path is offered or owned', async () => {
    const handler = page({ keygate: keygate({ pageSessions: false }) });
    expect(handler.owns('/login')).toBe(false);
    const html = (await handler.handle(request('/dashboard'))).body;
    expect(configOf(html).pageSessions).toBeNull();
    const off = page({ signInPath: false });
    expect(off.owns('/login')).toBe(false);
  });

  it('escapes what it echoes, so a crafted mount point cannot inject markup', async () => {
    const handler = page({ title: '<b>Keys</b>' });
    const base = '/x"><script>alert(1)</script>';
    const html = (await handler.handle(request('/dashboard', { base }))).body;
    expect(html).not.toContain('<script>alert(1)');
    expect(html).not.toContain('<b>');
    expect(configOf(html).mountPath).toBe(`${base}/dashboard`);
  });

  it('serves hashed assets for a year from the module it was built with, and nothing else under /assets', async () => {
    const handler = page({ path: '/d' });
    const html = (await handler.handle(request('/d'))).body;
    const script = /src="\/d\/assets\/([^"]+)"/.exec(html)![1]!;
    const style = /href="\/d\/assets\/([^"]+\.css)"/.exec(html)![1]!;
    const js = await handler.handle(request(`/d/assets/${script}`));
    expect(js.status).toBe(200);
    expect(js.headers['Content-Type']).toBe('text/javascript; charset=utf-8');
    expect(js.headers['Cache-Control']).toBe('public, max-age=31536000, immutable');
    expect(js.body.length).toBeGreaterThan(1000);
    const css = await handler.handle(request(`/d/assets/${style}`));
    expect(css.headers['Content-Type']).toBe('text/css; charset=utf-8');
    for (const path of [
      '/d/assets/main.js',
      '/d/assets/../package.json',
      '/d/assets/',
      '/d/assets/a/b.js',
      '/d/assets/constructor',
      '/d/assets/__proto__.x.js',
    ]) {
      const missing = await handler.handle(request(path));
      expect(missing.status, path).toBe(404);
      expect(missing.headers['Cache-Control']).toBeUndefined();
    }
  });

  it('answers HEAD without a body and other methods with 405', async () => {
    const handler = page();
    const head = await handler.handle(request('/dashboard', { method: 'HEAD' }));
    expect(head.status).toBe(200);
    expect(head.body).toBe('');
    const post = await handler.handle(request('/dashboard', { method: 'POST' }));
    expect(post.status).toBe(405);
    expect(post.headers.Allow).toBe('GET, HEAD');
  });

  it.each([
    [{ managementPath: 'v1/api-keys' }, 'managementPath'],
    [{ managementPath: '/v1/"keys' }, 'managementPath'],
    [{ path: '/' }, 'path'],
    [{ signInPath: 'login' }, 'signInPath'],
    [{ signInUrl: 'javascript:alert(1)' }, 'signInUrl'],
    [{ signInUrl: '//evil.example' }, 'signInUrl'],
    [{ scopes: ['read data'] }, 'scope'],
  ] as Array<[Partial<KeyDashboardOptions>, string]>)(
    'refuses %j when it is created',
    (options, named) => {
      expect(() => page(options)).toThrow(KeygateConfigError);
      expect(() => page(options)).toThrow(named);
    },
  );

  it('refuses a sign-in path when the keygate keeps no page sessions', () => {
    const store = Object.assign(new MemoryKeyStore(), { sessions: undefined });
    expect(() => page({ keygate: keygate({ store }), signInPath: '/login' })).toThrow(
      /signInPath needs page sessions/,
    );
  });
});

describe('createKeyPage: sign-in and sign-out', () => {
  it('signs in with an admin key: a cookie, then the page knows the session and asks who it is', async () => {
    const instance = keygate();
    const handler = page({ keygate: instance });
    const form = await handler.handle(request('/login'));
    expect(form.status).toBe(200);
    expect(configOf(form.body)).toMatchObject({ view: 'sign-in', message: null });
    expect(form.headers['Cache-Control']).toBe('no-store');

    const admin = await instance.keys.create({ name: 'admin', scopes: ['manage:keys'] });
    const signedIn = await signIn(handler, admin.secret);
    expect(signedIn.status).toBe(303);
    expect(signedIn.headers.Location).toBe('/dashboard');
    const cookie = signedIn.headers['Set-Cookie']!;
    expect(cookie).toMatch(
      /^keygate_session=[0-9a-f]{64}; Path=\/; Max-Age=28800; HttpOnly; SameSite=Strict$/,
    );
    const headers = { cookie: cookie.split(';')[0]! };
    const shown = await handler.handle(request('/dashboard', { headers }));
    expect(configOf(shown.body).session).toBe('page');
    const again = await handler.handle(request('/login', { headers }));
    expect([again.status, again.headers.Location]).toEqual([303, '/dashboard']);

    const out = await handler.handle(
      request('/logout', {
        method: 'POST',
        headers: { ...headers, 'sec-fetch-site': 'same-origin' },
      }),
    );
    expect(out.status).toBe(303);
    expect(out.headers.Location).toBe('/login');
    expect(out.headers['Set-Cookie']).toBe(
      'keygate_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict',
    );
    // Ended server-side: the cookie kept by another tab no longer opens anything.
    const after = await handler.handle(request('/dashboard', { headers }));
    expect(configOf(after.body).session).toBeNull();
    expect(after.headers['Set-Cookie']).toMatch(/^keygate_session=; Path=\/; Max-Age=0/);
    const decision = await instance.authenticate({
      method: 'GET',
      url: '/v1/api-keys',
      headers: new Headers(headers),
      ip: '127.0.0.1',
    });
    expect(!decision.ok && decision.body.code).toBe('AUTH_REQUIRED');
  });

  it('over HTTPS (as the framework sees the scheme) the cookie is __Host- and Secure', async () => {
    const instance = keygate();
    const handler = page({ keygate: instance });
    const admin = await instance.keys.create({ name: 'admin', scopes: ['manage:keys'] });
    const signedIn = await signIn(handler, admin.secret, 'https://keys.example.com');
    expect(signedIn.headers['Set-Cookie']).toMatch(
      /^__Host-keygate_session=[0-9a-f]{64}; Path=\/; Max-Age=28800; HttpOnly; Secure; SameSite=Strict$/,
    );
  });

  it('answers a failed sign-in on the styled form, with the status and what went wrong', async () => {
    const instance = keygate();
    const handler = page({ keygate: instance });
    const reader = await instance.keys.create({ name: 'reader', scopes: ['read:data'] });
    const browser = await instance.keys.create({
      name: 'browser',
      type: 'public',
      scopes: ['track:events'],
    });
    const elsewhere = await instance.keys.create({
      name: 'elsewhere',
      scopes: ['manage:keys'],
      restrictions: { ips: ['203.0.113.0/24'] },
    });
    for (const [key, status, message] of [
      ['sk_live_nonsense', 401, /unknown, revoked, expired, rotated or mistyped/],
      [reader.secret, 403, /needs the manage:keys scope/],
      [browser.secret, 403, /Public keys cannot sign in/],
      [elsewhere.secret, 403, /IP or origin restrictions/],
      ['', 401, /mistyped/],
    ] as const) {
      const refused = await signIn(handler, key);
      expect(refused.status, key).toBe(status);
      expect(refused.headers['Set-Cookie']).toBeUndefined();
      expect(refused.headers['Content-Type']).toBe('text/html; charset=utf-8');
      const config = configOf(refused.body);
      expect(config.view).toBe('sign-in');
      expect(config.message).toMatch(message);
      expect(refused.body).not.toContain(key || 'sk_');
    }
  });

  it('takes sign-in and sign-out forms from this site only (login CSRF)', async () => {
    const instance = keygate();
    const handler = page({ keygate: instance });
    const admin = await instance.keys.create({ name: 'admin', scopes: ['manage:keys'] });
    const body = new URLSearchParams({ key: admin.secret }).toString();
    for (const headers of [
      { 'sec-fetch-site': 'same-site' },
      { 'sec-fetch-site': 'cross-site' },
      { origin: 'http://evil.example' },
      {},
    ]) {
      const refused = await handler.handle(request('/login', { method: 'POST', headers, body }));
      expect(refused.status, JSON.stringify(headers)).toBe(403);
      expect(refused.headers['Set-Cookie']).toBeUndefined();
    }
    const fromOrigin = await handler.handle(
      request('/login', { method: 'POST', headers: { origin: 'http://127.0.0.1:3000' }, body }),
    );
    expect(fromOrigin.status).toBe(303);
    const cookie = fromOrigin.headers['Set-Cookie']!.split(';')[0]!;
    const crossSiteOut = await handler.handle(
      request('/logout', { method: 'POST', headers: { cookie, 'sec-fetch-site': 'cross-site' } }),
    );
    expect(crossSiteOut.status).toBe(403);
    const stillIn = await handler.handle(request('/dashboard', { headers: { cookie } }));
    expect(configOf(stillIn.body).session).toBe('page');
  });

  it('reads at most 4 KiB of form, and takes a form a body parser already read', async () => {
    const instance = keygate();
    const handler = page({ keygate: instance });
    const huge = await handler.handle({
      ...request('/login', { method: 'POST', headers: SAME_ORIGIN }),
      body: () =>
        (async function* () {
          yield new TextEncoder().encode(`key=${'x'.repeat(5000)}`);
        })(),
    });
    expect(huge.status).toBe(413);
    const admin = await instance.keys.create({ name: 'admin', scopes: ['manage:keys'] });
    const parsed = await handler.handle({
      ...request('/login', { method: 'POST', headers: SAME_ORIGIN }),
      body: () => ({ key: admin.secret }),
    });
    expect(parsed.status).toBe(303);
    const other = await handler.handle(request('/login', { method: 'PUT', headers: SAME_ORIGIN }));
    expect([other.status, other.headers.Allow]).toEqual([405, 'GET, HEAD, POST']);
    const getOut = await handler.handle(request('/logout'));
    expect([getOut.status, getOut.headers.Allow]).toEqual([405, 'POST']);
  });
});
