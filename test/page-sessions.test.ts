/**
 * Page sessions in the reference apps (SPEC §6, issue #21 items 2 and 3): `/login` exchanges an
 * admin key for a session cookie, `POST /logout` ends it server-side, and the session acts with
 * its key's current record. With keys and sessions in Postgres and invalidations on Redis, two
 * app processes share the sessions: a session signed in on one is refused on the other as soon
 * as its key is narrowed, rotated or revoked there, and a sign-out on one ends it on both.
 */
import { createKeygate, type Keygate } from '@keygate/core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { adapters, type RunningApp, startApp } from './conformance/harness.js';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';
import { type AppProcess, startAppProcess, stopAppProcesses } from './support/processes.js';
import { GENEROUS_REDIS_TIMEOUT_MS, type RedisServer, startRedisServer } from './support/redis.js';

const SAME_ORIGIN = {
  'content-type': 'application/x-www-form-urlencoded',
  'sec-fetch-site': 'same-origin',
};

function signIn(origin: string, key: string, headers: Record<string, string> = {}) {
  return fetch(`${origin}/login`, {
    method: 'POST',
    redirect: 'manual',
    headers: { ...SAME_ORIGIN, ...headers },
    body: new URLSearchParams({ key }).toString(),
  });
}

function cookieOf(response: Response): string {
  const cookie = response.headers.get('set-cookie');
  if (!cookie) throw new Error(`no cookie (status ${response.status})`);
  return cookie.split(';')[0]!;
}

function me(origin: string, cookie: string) {
  return fetch(`${origin}/v1/api-keys/me`, { headers: { cookie } });
}

describe.each(adapters)('/login and /logout on the $name reference app', (adapter) => {
  const cleanup: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const close of cleanup.splice(0)) await close();
  });

  async function start(trustProxy = 0): Promise<{ keygate: Keygate; app: RunningApp }> {
    const keygate = createKeygate({ authFailureLimit: false });
    const app = await startApp(adapter, keygate, { trustProxy });
    cleanup.push(async () => {
      await app.close();
      await keygate.close();
    });
    return { keygate, app };
  }

  it('signs in with an admin key, acts as that key, and signs out server-side', async () => {
    const { keygate, app } = await start();
    const form = await fetch(`${app.origin}/login`);
    expect(form.status).toBe(200);
    expect(form.headers.get('cache-control')).toBe('no-store');
    expect(form.headers.get('content-security-policy')).toContain("default-src 'none'");
    expect(await form.text()).toContain('"view":"sign-in"');
    const admin = await keygate.keys.create({
      name: 'Ops admin',
      scopes: ['manage:keys', 'read:data'],
      resources: ['website:w_1'],
      // Bounds a session can now carry: it acts with the whole key.
      expiresAt: new Date(Date.now() + 86_400_000),
      rateLimit: { perSecond: 50 },
    });

    const signedIn = await signIn(app.origin, admin.secret);
    expect(signedIn.status).toBe(303);
    expect(signedIn.headers.get('location')).toBe('/dashboard');
    expect(signedIn.headers.get('set-cookie')).toMatch(
      /^keygate_session=[0-9a-f]{64}; Path=\/; Max-Age=28800; HttpOnly; SameSite=Strict$/,
    );
    const cookie = cookieOf(signedIn);
    const who = await me(app.origin, cookie);
    expect(who.status).toBe(200);
    expect(who.headers.get('cache-control')).toBe('no-store');
    expect(((await who.json()) as { data: unknown }).data).toMatchObject({
      kind: 'key',
      id: admin.key.id,
      name: 'Ops admin',
      scopes: ['manage:keys', 'read:data'],
      resources: ['website:w_1'],
    });
    const page = await fetch(`${app.origin}/dashboard`, { headers: { cookie } });
    expect(await page.text()).toContain('"session":"page"');

    const signedOut = await fetch(`${app.origin}/logout`, {
      method: 'POST',
      redirect: 'manual',
      headers: { cookie, 'sec-fetch-site': 'same-origin' },
    });
    expect(signedOut.status).toBe(303);
    expect(signedOut.headers.get('location')).toBe('/login');
    expect(signedOut.headers.get('set-cookie')).toBe(
      'keygate_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict',
    );
    // The cookie a copy of the browser kept opens nothing: the session is gone from the store.
    expect((await me(app.origin, cookie)).status).toBe(401);
  });

  it('refuses non-admin and unknown keys, other sites, and oversized forms, setting no cookie', async () => {
    const { keygate, app } = await start();
    const reader = await keygate.keys.create({ name: 'reader', scopes: ['read:data'] });
    const admin = await keygate.keys.create({ name: 'admin', scopes: ['manage:keys'] });
    for (const [key, status] of [
      [reader.secret, 403],
      ['sk_live_nonsense', 401],
    ] as const) {
      const refused = await signIn(app.origin, key);
      expect(refused.status).toBe(status);
      expect(refused.headers.get('set-cookie')).toBeNull();
      expect(await refused.text()).toContain('"view":"sign-in"');
    }
    const otherSites: Array<Record<string, string>> = [
      { 'sec-fetch-site': 'same-site' },
      { 'sec-fetch-site': 'cross-site' },
      { 'sec-fetch-site': '', origin: 'http://evil.example' },
    ];
    for (const headers of otherSites) {
      const refused = await signIn(app.origin, admin.secret, headers);
      expect(refused.status, JSON.stringify(headers)).toBe(403);
      expect(refused.headers.get('set-cookie')).toBeNull();
    }
    expect((await signIn(app.origin, 'x'.repeat(10_000))).status).toBe(413);
  });

  it('behind a trusted proxy that says HTTPS, the cookie is __Host- and Secure where the framework trusts the scheme', async () => {
    const { keygate, app } = await start(1);
    const admin = await keygate.keys.create({ name: 'admin', scopes: ['manage:keys'] });
    const signedIn = await signIn(app.origin, admin.secret, { 'x-forwarded-proto': 'https' });
    // Express and Koa take the scheme from a trusted proxy; Hono has no proxy setting, so the
    // scheme is the request URL's (a Hono app behind TLS sees HTTPS only end to end).
    expect(signedIn.headers.get('set-cookie')).toMatch(
      adapter.name === 'hono'
        ? /^keygate_session=[0-9a-f]{64}; Path=\/; Max-Age=28800; HttpOnly; SameSite=Strict$/
        : /^__Host-keygate_session=[0-9a-f]{64}; Path=\/; Max-Age=28800; HttpOnly; Secure; SameSite=Strict$/,
    );
  });
});

describe('page sessions shared by two app processes on Postgres and Redis', () => {
  let database: TestDatabase;
  let redis: RedisServer;
  let a: AppProcess;
  let b: AppProcess;
  let keygate: Keygate;
  let root: string;
  /** Measured ms from the change's request to A's first refusal of the session. */
  const delays: Record<string, number> = {};

  beforeAll(async () => {
    [database, redis] = await Promise.all([createTestDatabase(), startRedisServer()]);
    const env = {
      DATABASE_URL: database.url,
      REDIS_URL: redis.url,
      KEYGATE_REDIS_TIMEOUT_MS: String(GENEROUS_REDIS_TIMEOUT_MS),
    };
    [a, b] = await Promise.all([startAppProcess('hono', env), startAppProcess('koa', env)]);
    keygate = createKeygate({ store: database.store, cache: false, limiter: false });
    root = (await keygate.keys.create({ name: 'root', scopes: ['manage:keys', 'read:data'] }))
      .secret;
  }, 120_000);

  afterAll(async () => {
    await stopAppProcesses();
    await keygate?.close();
    await Promise.allSettled([redis?.kill(), database?.close()]);
    console.info('page session refused on instance A after a change on B (ms):', delays);
  });

  async function owner(): Promise<{ id: string; cookie: string }> {
    const issued = await keygate.keys.create({
      name: 'owner',
      scopes: ['manage:keys', 'read:data'],
    });
    const signedIn = await signIn(a.origin, issued.secret);
    expect(signedIn.status).toBe(303);
    return { id: issued.key.id, cookie: cookieOf(signedIn) };
  }

  function analytics(app: AppProcess, cookie: string) {
    return fetch(`${app.origin}/v1/websites/w_1/analytics`, { headers: { cookie } });
  }

  function manageOnB(method: string, path: string, body?: unknown) {
    return fetch(`${b.origin}/v1/api-keys${path}`, {
      method,
      headers: { authorization: `Bearer ${root}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  }

  /** Asks A until it answers `status`: the change made on B must reach it within a second. */
  async function refusedOnA(cookie: string, status: number, since: number): Promise<number> {
    for (;;) {
      const answer = await analytics(a, cookie);
      await answer.arrayBuffer();
      const elapsed = performance.now() - since;
      if (answer.status === status) return elapsed;
      if (elapsed > 5_000) throw new Error(`A still answered ${answer.status} after 5 s`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }

  it('a session signed in on A is known to B; the session rows hold no token and no secret', async () => {
    const session = await owner();
    expect((await me(b.origin, session.cookie)).status).toBe(200);
    const rows =
      await database.sql`select * from keygate_page_sessions where key_id = ${session.id}`;
    expect(rows).toHaveLength(1);
    expect(JSON.stringify(rows)).not.toContain(session.cookie.split('=')[1]!);
  });

  it('narrowed on B, the session’s next request on A is refused (within the second of revocation)', async () => {
    const session = await owner();
    expect((await analytics(a, session.cookie)).status).toBe(200);
    const started = performance.now();
    expect(
      (await manageOnB('PATCH', `/${session.id}`, { resources: ['website:w_2'] })).status,
    ).toBe(200);
    delays.narrowed = Math.round(await refusedOnA(session.cookie, 403, started));
    expect(delays.narrowed).toBeLessThan(1_000);
  });

  it('rotated on B, the session ends on A at once, grace period or not', async () => {
    const session = await owner();
    expect((await analytics(a, session.cookie)).status).toBe(200);
    const started = performance.now();
    const rotated = await manageOnB('POST', `/${session.id}/rotate`, { gracePeriodSeconds: 3600 });
    expect(rotated.status).toBe(200);
    delays.rotated = Math.round(await refusedOnA(session.cookie, 401, started));
    expect(delays.rotated).toBeLessThan(1_000);
    expect((await me(b.origin, session.cookie)).status).toBe(401);
  });

  it('signed out on B, the session is refused on A at once', async () => {
    const session = await owner();
    expect((await analytics(a, session.cookie)).status).toBe(200);
    const out = await fetch(`${b.origin}/logout`, {
      method: 'POST',
      redirect: 'manual',
      headers: { cookie: session.cookie, 'sec-fetch-site': 'same-origin' },
    });
    expect(out.status).toBe(303);
    // No cache in between: the very next request on A finds no session.
    expect((await analytics(a, session.cookie)).status).toBe(401);
  });

  it('keeps ten sessions per key: the eleventh sign-in ends the oldest', async () => {
    const issued = await keygate.keys.create({ name: 'busy', scopes: ['manage:keys'] });
    const cookies: string[] = [];
    for (let i = 0; i < 11; i++) cookies.push(cookieOf(await signIn(a.origin, issued.secret)));
    const [{ count }] = await database.sql<[{ count: number }]>`
      select count(*)::int as count from keygate_page_sessions where key_id = ${issued.key.id}`;
    expect(count).toBe(10);
    expect((await me(b.origin, cookies[0]!)).status).toBe(401);
    expect((await me(b.origin, cookies[10]!)).status).toBe(200);
  });
});
