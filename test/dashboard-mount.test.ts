/**
 * `keyDashboard()` of `@keygate/dashboard` on each framework: the reference apps' `/dashboard`
 * (and `/` leading there), `/login` and `/logout`, and a mount anywhere else, answer the same page
 * and assets with the same headers.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createAdaptorServer } from '@hono/node-server';
import { createKeygate, type Keygate } from '@keygate/core';
import { keyDashboard as expressDashboard } from '@keygate/dashboard/express';
import { keyDashboard as honoDashboard } from '@keygate/dashboard/hono';
import { keyDashboard as koaDashboard } from '@keygate/dashboard/koa';
import express from 'express';
import { Hono } from 'hono';
import Koa from 'koa';
import { afterAll, describe, expect, it } from 'vitest';
import { adapters, startApp } from './conformance/harness.js';

const keygate: Keygate = createKeygate();
afterAll(() => keygate.close());

/** Each framework with the page mounted below a nested prefix, as an application would. */
const nested: Record<string, () => http.Server> = {
  hono: () => {
    const app = new Hono();
    app.use(honoDashboard({ keygate, path: '/admin/api-keys' }));
    return createAdaptorServer({ fetch: app.fetch }) as http.Server;
  },
  express: () => {
    const app = express();
    app.use('/admin', expressDashboard({ keygate, path: '/api-keys' }));
    return http.createServer(app);
  },
  koa: () => {
    const app = new Koa();
    app.use(koaDashboard({ keygate, path: '/admin/api-keys' }));
    app.use((ctx) => {
      ctx.status = 404;
    });
    return http.createServer(app.callback());
  },
};

async function listen(server: http.Server): Promise<{ origin: string; close(): Promise<void> }> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

describe.each(adapters)('the key-management page on $name', (adapter) => {
  it('is at /dashboard in the reference app, and / leads there', async () => {
    const app = await startApp(adapter, keygate);
    try {
      const root = await fetch(`${app.origin}/`, { redirect: 'manual' });
      expect(root.status).toBe(302);
      expect(root.headers.get('location')).toBe('/dashboard');
      for (const path of ['/dashboard', '/dashboard/', '/dashboard/keys/key_1']) {
        const page = await fetch(`${app.origin}${path}`);
        expect(page.status, path).toBe(200);
        expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
        expect(page.headers.get('content-security-policy')).toContain("default-src 'none'");
        expect(page.headers.get('cache-control')).toBe('no-store');
        expect(await page.text()).toContain('src="/dashboard/assets/main.');
      }
      const signIn = await fetch(`${app.origin}/login`);
      expect(signIn.status).toBe(200);
      expect(await signIn.text()).toContain('"view":"sign-in"');
      expect((await fetch(`${app.origin}/logout`)).status).toBe(405);
    } finally {
      await app.close();
    }
  });

  it('answers below any mount point, assets long-cached, other methods 405', async () => {
    const server = await listen(nested[adapter.name]!());
    try {
      const page = await fetch(`${server.origin}/admin/api-keys/keys/key_1`);
      const html = await page.text();
      const script = /src="(\/admin\/api-keys\/assets\/main\.\w+\.js)"/.exec(html)?.[1];
      expect(script, html).toBeDefined();
      const asset = await fetch(`${server.origin}${script}`);
      expect(asset.status).toBe(200);
      expect(asset.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
      expect(asset.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
      expect(asset.headers.get('x-content-type-options')).toBe('nosniff');
      expect((await asset.arrayBuffer()).byteLength).toBeGreaterThan(1000);
      const missing = await fetch(`${server.origin}/admin/api-keys/assets/nope.js`);
      expect(missing.status).toBe(404);
      const post = await fetch(`${server.origin}/admin/api-keys`, { method: 'POST' });
      expect(post.status).toBe(405);
      expect((await fetch(`${server.origin}/admin/api-keysX`)).status).toBe(404);
    } finally {
      await server.close();
    }
  });
});
