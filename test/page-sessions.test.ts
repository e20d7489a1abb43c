/**
 * The reference apps' `/login`: an admin key opens a browser session for the key-management page,
 * no wider than the key, from this site only, and ending when the key is revoked.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createAdaptorServer } from '@hono/node-server';
import { createKeygate, type Keygate } from '@keygate/core';
import { afterEach, describe, expect, it } from 'vitest';
import { createApp as createExpressApp } from '../examples/express/src/app.js';
import { createApp as createHonoApp } from '../examples/hono/src/app.js';
import { createApp as createKoaApp } from '../examples/koa/src/app.js';
import { DemoSessions } from '../examples/shared/src/session.js';

type Server = (keygate: Keygate, sessions: DemoSessions) => http.Server;
const servers: Array<[string, Server]> = [
  [
    'hono',
    (keygate, sessions) =>
      createAdaptorServer({ fetch: createHonoApp(keygate, { sessions }).fetch }) as http.Server,
  ],
  ['express', (keygate, sessions) => http.createServer(createExpressApp(keygate, { sessions }))],
  ['koa', (keygate, sessions) => http.createServer(createKoaApp(keygate, { sessions }).callback())],
];

const cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const close of cleanup.splice(0)) await close();
});

async function start(server: Server) {
  const sessions = new DemoSessions();
  const keygate = createKeygate({ session: sessions.resolver, authFailureLimit: false });
  const listening = server(keygate, sessions);
  await new Promise<void>((resolve) => listening.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(listening.address() as AddressInfo).port}`;
  cleanup.push(async () => {
    listening.closeAllConnections();
    await new Promise((resolve) => listening.close(resolve));
    await keygate.close();
  });
  return { keygate, origin };
}

function login(origin: string, key: string, headers: Record<string, string> = {}) {
  return fetch(`${origin}/login`, {
    method: 'POST',
    redirect: 'manual',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      'sec-fetch-site': 'same-origin',
      ...headers,
    },
    body: new URLSearchParams({ key }).toString(),
  });
}

describe.each(servers)('/login on %s', (_name, server) => {
  it('exchanges an admin key for a session cookie that ends with the key', async () => {
    const { keygate, origin } = await start(server);
    const page = await fetch(`${origin}/login`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toContain("default-src 'none'");
    const admin = await keygate.keys.create({
      name: 'admin',
      scopes: ['manage:keys', 'read:data'],
      resources: ['website:w_1'],
    });

    const signedIn = await login(origin, admin.secret);
    expect(signedIn.status).toBe(303);
    expect(signedIn.headers.get('location')).toBe('/dashboard');
    const cookie = signedIn.headers.get('set-cookie') ?? '';
    expect(cookie).toMatch(
      /^keygate_session=[\w-]+; Path=\/; HttpOnly; SameSite=Strict; Max-Age=3600$/,
    );
    const session = { cookie: cookie.split(';')[0]! };
    const me = await fetch(`${origin}/v1/api-keys/me`, { headers: session });
    expect(me.status).toBe(200);
    expect(((await me.json()) as { data: unknown }).data).toMatchObject({
      kind: 'session',
      scopes: ['manage:keys', 'read:data'],
      resources: ['website:w_1'],
    });

    await keygate.keys.revoke(admin.key.id);
    expect((await fetch(`${origin}/v1/api-keys/me`, { headers: session })).status).toBe(401);
  });

  it('refuses keys bounded by more than a session can carry, non-admin keys, and other sites', async () => {
    const { keygate, origin } = await start(server);
    const reader = await keygate.keys.create({ name: 'reader', scopes: ['read:data'] });
    const restricted = await keygate.keys.create({
      name: 'restricted',
      scopes: ['manage:keys'],
      restrictions: { ips: ['203.0.113.0/24'] },
    });
    const test = await keygate.keys.create({
      name: 'test',
      environment: 'test',
      scopes: ['manage:keys'],
    });
    const expiring = await keygate.keys.create({
      name: 'expiring',
      scopes: ['manage:keys'],
      expiresAt: new Date(Date.now() + 86_400_000),
    });
    const limited = await keygate.keys.create({
      name: 'limited',
      scopes: ['manage:keys'],
      rateLimit: { perSecond: 1 },
    });
    const admin = await keygate.keys.create({ name: 'admin', scopes: ['manage:keys'] });
    const refusedKeys = [reader, restricted, test, expiring, limited].map(
      (issued) => issued.secret,
    );
    for (const key of [...refusedKeys, 'sk_live_nonsense']) {
      const refused = await login(origin, key);
      expect(refused.status).toBe(401);
      expect(refused.headers.get('set-cookie')).toBeNull();
    }
    const otherSites: Array<Record<string, string>> = [
      { 'sec-fetch-site': 'same-site' },
      { 'sec-fetch-site': 'cross-site' },
      { 'sec-fetch-site': '', origin: 'http://evil.example' },
    ];
    for (const headers of otherSites) {
      const refused = await login(origin, admin.secret, headers);
      expect(refused.status, JSON.stringify(headers)).toBe(403);
      expect(refused.headers.get('set-cookie')).toBeNull();
    }
    const huge = await login(origin, 'x'.repeat(10_000));
    expect(huge.status).toBe(413);
  });
});
