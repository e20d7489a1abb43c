import { afterEach, describe, expect, it } from 'vitest';
import { createDashboard, type DashboardConfig, type DashboardResponse } from './dashboard.js';
import { KeygateConfigError } from './errors.js';
import { createKeygate, type Keygate } from './keygate.js';

const open: Keygate[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((keygate) => keygate.close()));
});

function keygate(options: Parameters<typeof createKeygate>[0] = {}): Keygate {
  const created = createKeygate(options);
  open.push(created);
  return created;
}

function text(response: DashboardResponse): string {
  return typeof response.body === 'string' ? response.body : Buffer.from(response.body).toString();
}

function configOf(html: string): DashboardConfig {
  const json =
    /<script type="application\/json" id="keygate-dashboard-config">(.*?)<\/script>/s.exec(
      html,
    )?.[1];
  return JSON.parse(json ?? 'null') as DashboardConfig;
}

describe('createDashboard', () => {
  it('serves the page with a strict CSP, no caching, and its configuration', () => {
    const handle = createDashboard(
      keygate({ publicScopes: ['track:events'], environments: ['live'], session: () => null }),
      { scopes: ['read:data', 'track:events'], signInUrl: '/login' },
    );
    const response = handle({ method: 'GET', mountPath: '/dashboard', path: '/' });
    expect(response.status).toBe(200);
    expect(response.headers).toMatchObject({
      'Content-Type': 'text/html; charset=utf-8',
      'Cache-Control': 'no-store',
      'X-Content-Type-Options': 'nosniff',
      'Referrer-Policy': 'no-referrer',
      'Content-Security-Policy':
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    });
    const html = text(response);
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
      sessions: true,
      signInUrl: '/login',
    });
  });

  it('serves the same page at any path below the mount (deep links), mounted anywhere', () => {
    const handle = createDashboard(keygate());
    for (const [mountPath, path] of [
      ['/admin/keys', ''],
      ['/admin/keys/', '/keys/key_1'],
    ] as const) {
      const html = text(handle({ method: 'GET', mountPath, path }));
      expect(html).toContain('src="/admin/keys/assets/main.');
      expect(configOf(html).mountPath).toBe('/admin/keys');
      expect(configOf(html).sessions).toBe(false);
    }
  });

  it('escapes what it echoes, so a crafted mount path cannot inject markup', () => {
    const handle = createDashboard(keygate(), { title: '<b>Keys</b>' });
    const html = text(
      handle({ method: 'GET', mountPath: '/x"><script>alert(1)</script>', path: '/' }),
    );
    expect(html).not.toContain('<script>alert(1)');
    expect(html).not.toContain('<b>');
    expect(configOf(html).mountPath).toBe('/x"><script>alert(1)</script>');
  });

  it('serves hashed assets for a year, and nothing else under /assets', () => {
    const handle = createDashboard(keygate());
    const html = text(handle({ method: 'GET', mountPath: '/d', path: '/' }));
    const script = /src="\/d\/assets\/([^"]+)"/.exec(html)![1]!;
    const style = /href="\/d\/assets\/([^"]+\.css)"/.exec(html)![1]!;
    const js = handle({ method: 'GET', mountPath: '/d', path: `/assets/${script}` });
    expect(js.status).toBe(200);
    expect(js.headers['Content-Type']).toBe('text/javascript; charset=utf-8');
    expect(js.headers['Cache-Control']).toBe('public, max-age=31536000, immutable');
    expect(text(js).length).toBeGreaterThan(1000);
    const css = handle({ method: 'GET', mountPath: '/d', path: `/assets/${style}` });
    expect(css.headers['Content-Type']).toBe('text/css; charset=utf-8');
    for (const path of [
      '/assets/main.js',
      '/assets/../package.json',
      '/assets/',
      '/assets/a/b.js',
    ]) {
      const missing = handle({ method: 'GET', mountPath: '/d', path });
      expect(missing.status, path).toBe(404);
      expect(missing.headers['Cache-Control']).toBeUndefined();
    }
  });

  it('answers HEAD without a body and other methods with 405', () => {
    const handle = createDashboard(keygate());
    const head = handle({ method: 'HEAD', mountPath: '/d', path: '/' });
    expect(head.status).toBe(200);
    expect(head.body).toBe('');
    const post = handle({ method: 'POST', mountPath: '/d', path: '/' });
    expect(post.status).toBe(405);
    expect(post.headers.Allow).toBe('GET, HEAD');
  });

  it.each([
    [{ managementPath: 'v1/api-keys' }, 'managementPath'],
    [{ managementPath: '/v1/"keys' }, 'managementPath'],
    [{ signInUrl: 'javascript:alert(1)' }, 'signInUrl'],
    [{ signInUrl: '//evil.example' }, 'signInUrl'],
    [{ scopes: ['read data'] }, 'scope'],
  ])('refuses %j when it is created', (options, named) => {
    expect(() => createDashboard(keygate(), options)).toThrow(KeygateConfigError);
    expect(() => createDashboard(keygate(), options)).toThrow(named);
  });
});
