import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Failure } from './errors.js';
import { createKeygate, type Keygate, type KeygateOptions } from './keygate.js';
import { MemorySessionStore } from './memory-session-store.js';
import { MemoryKeyStore } from './memory-store.js';
import type { SignedIn } from './page-session.js';
import type {
  AuditEvent,
  AuditSink,
  Decision,
  KeygateRequest,
  RateLimiter,
  SessionStore,
} from './types.js';

const open: Keygate[] = [];
afterEach(async () => {
  vi.useRealTimers();
  await Promise.all(open.splice(0).map((keygate) => keygate.close()));
});

const ORIGIN = 'http://127.0.0.1:3000';

function setup(options: KeygateOptions = {}) {
  const store = new MemoryKeyStore();
  const events: AuditEvent[] = [];
  const sink: AuditSink = { write: async (batch) => void events.push(...batch) };
  const logger = { warn: vi.fn(), error: vi.fn() };
  const keygate = createKeygate({
    store,
    authFailureLimit: false,
    auditSinks: [sink],
    logger,
    ...options,
  });
  open.push(keygate);
  const admin = (input: Partial<Parameters<Keygate['keys']['create']>[0]> = {}) =>
    keygate.keys.create({ name: 'owner', scopes: ['manage:keys', 'read:data'], ...input });
  const audited = async () => {
    await keygate.audit.flush();
    return events;
  };
  return { keygate, store, admin, audited, logger };
}

function request(
  init: {
    cookie?: string;
    url?: string;
    ip?: string;
    method?: string;
    headers?: Record<string, string>;
  } = {},
): KeygateRequest {
  const headers = new Headers(init.headers);
  if (init.cookie) headers.set('cookie', init.cookie);
  return {
    method: init.method ?? 'GET',
    url: init.url ?? '/v1/api-keys',
    headers,
    ip: init.ip ?? '127.0.0.1',
  };
}

async function signIn(keygate: Keygate, secret: string, origin = ORIGIN, ip?: string) {
  return keygate.sessions.signIn({
    secret,
    request: request({ method: 'POST', url: '/login', ...(ip ? { ip } : {}) }),
    origin,
  });
}

function signedIn(result: SignedIn | Failure): string {
  if (!result.ok) throw new Error(`not signed in: ${result.body.code} ${result.error.reason}`);
  return result.cookie.split(';')[0]!;
}

function refused(decision: Decision): [number, string, string] {
  if (decision.ok) throw new Error('expected a refusal');
  return [decision.status, decision.body.code, decision.error.reason];
}

describe('page sessions: signing in', () => {
  it('opens a session for a current admin secret; the store holds the token’s hash and the digest, never either secret', async () => {
    const sessions = new MemorySessionStore();
    const stored = vi.spyOn(sessions, 'create');
    const { keygate, admin, audited } = setup({ pageSessions: { store: sessions } });
    const owner = await admin();
    const result = await signIn(keygate, owner.secret);
    const cookie = signedIn(result);
    expect(result.ok && result.cookie).toMatch(
      /^keygate_session=[0-9a-f]{64}; Path=\/; Max-Age=28800; HttpOnly; SameSite=Strict$/,
    );
    const token = cookie.split('=')[1]!;
    const [record, maxPerKey] = stored.mock.calls[0]!;
    expect(maxPerKey).toBe(10);
    expect(record).toMatchObject({ keyId: owner.key.id, origin: ORIGIN });
    expect(record.tokenHash).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.stringify(record)).not.toContain(token);
    expect(JSON.stringify(record)).not.toContain(owner.secret);
    expect(record.expiresAt.getTime() - record.createdAt.getTime()).toBe(8 * 3_600_000);
    expect(record.activeUntil.getTime() - record.createdAt.getTime()).toBe(30 * 60_000);

    const decision = await keygate.authenticate(request({ cookie }));
    expect(decision.ok && decision.principal).toMatchObject({
      kind: 'key',
      id: owner.key.id,
      scopes: ['manage:keys', 'read:data'],
      pageSession: { id: expect.stringMatching(/^ses_[0-9a-f]{16}$/) },
    });
    const started = (await audited()).find((event) => event.action === 'session.started');
    expect(started).toMatchObject({ keyId: owner.key.id, actor: owner.key.id, outcome: 'success' });
    expect(JSON.stringify(await audited())).not.toContain(token);
  });

  it('refuses keys that cannot manage keys, and secrets that are not the key’s current one', async () => {
    const { keygate, admin } = setup();
    const reader = await keygate.keys.create({ name: 'reader', scopes: ['read:data'] });
    const browser = await keygate.keys.create({
      name: 'browser',
      type: 'public',
      scopes: ['track:events'],
    });
    const owner = await admin();
    const rotated = await keygate.keys.rotate(owner.key.id, { gracePeriodSeconds: 3600 });
    const revoked = await admin({ name: 'revoked' });
    await keygate.keys.revoke(revoked.key.id);
    const cases: Array<[string, [number, string, string]]> = [
      [reader.secret, [403, 'INSUFFICIENT_SCOPE', 'insufficient_scope']],
      [browser.secret, [403, 'FORBIDDEN', 'key_type']],
      // Still accepted from servers during the grace period, but it opens no session.
      [owner.secret, [401, 'INVALID_API_KEY', 'rotated']],
      [revoked.secret, [401, 'INVALID_API_KEY', 'revoked']],
      ['sk_live_nope', [401, 'INVALID_API_KEY', 'malformed']],
    ];
    for (const [secret, expected] of cases) {
      const result = await signIn(keygate, secret);
      expect(
        result.ok ? 'signed in' : [result.status, result.body.code, result.error.reason],
      ).toEqual(expected);
    }
    signedIn(await signIn(keygate, rotated.secret));
  });

  it('checks the key’s IP and origin restrictions at sign-in, its endpoints on each request', async () => {
    const { keygate, admin } = setup();
    const fromApp = await admin({
      restrictions: {
        referrers: ['https://keys.example.com'],
        endpoints: ['GET /v1/api-keys/**'],
        ips: ['127.0.0.1/32'],
      },
    });
    expect(refused((await signIn(keygate, fromApp.secret)) as Failure)).toEqual([
      403,
      'FORBIDDEN',
      'restricted_referrer',
    ]);
    expect(
      refused(
        (await signIn(keygate, fromApp.secret, 'https://keys.example.com', '10.0.0.1')) as Failure,
      ),
    ).toEqual([403, 'FORBIDDEN', 'restricted_ip']);
    const cookie = signedIn(await signIn(keygate, fromApp.secret, 'https://keys.example.com'));
    const secure = cookie;
    expect(secure).toMatch(/^__Host-/);
    // A page's `fetch` sends neither Origin nor Referer on a GET: the sign-in's origin stands for it.
    expect(
      (await keygate.authenticate(request({ cookie: secure, url: '/v1/api-keys/me' }))).ok,
    ).toBe(true);
    expect(
      refused(await keygate.authenticate(request({ cookie: secure, method: 'POST' }))),
    ).toEqual([403, 'FORBIDDEN', 'restricted_endpoint']);
    // The page itself is no endpoint of the API: it knows the session, whose calls are checked.
    expect(await keygate.sessions.current(request({ cookie: secure, url: '/dashboard' }))).toBe(
      'page',
    );
    expect(
      refused(await keygate.authenticate(request({ cookie: secure, ip: '10.0.0.1' }))),
    ).toEqual([403, 'FORBIDDEN', 'restricted_ip']);
  });
});

describe('page sessions: each request acts with the key’s current record', () => {
  it('narrowed, rotated, revoked: the next request sees it (the cache is invalidated)', async () => {
    const { keygate, admin } = setup();
    const owner = await admin();
    const cookie = signedIn(await signIn(keygate, owner.secret));
    const principal = async () => {
      const decision = await keygate.authenticate(request({ cookie }));
      return decision.ok ? decision.principal : refused(decision);
    };
    expect(await principal()).toMatchObject({ scopes: ['manage:keys', 'read:data'] });
    await keygate.keys.update(owner.key.id, { scopes: ['read:data'], resources: ['website:w_1'] });
    expect(await principal()).toMatchObject({ scopes: ['read:data'], resources: ['website:w_1'] });
    await keygate.keys.rotate(owner.key.id, { gracePeriodSeconds: 600 });
    expect(await principal()).toEqual([401, 'AUTH_REQUIRED', 'session_key_rotated']);
    // Ended for good: the session was deleted, so even the same cookie names nothing now.
    expect(await principal()).toEqual([401, 'AUTH_REQUIRED', 'session_unknown']);

    const other = await admin({ name: 'other' });
    const second = signedIn(await signIn(keygate, other.secret));
    await keygate.keys.revoke(other.key.id);
    expect(refused(await keygate.authenticate(request({ cookie: second })))).toEqual([
      401,
      'AUTH_REQUIRED',
      'session_key_revoked',
    ]);
  });

  it('ends when its key expires', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const { keygate, admin } = setup();
    const owner = await admin({ expiresAt: new Date(Date.now() + 60_000) });
    const cookie = signedIn(await signIn(keygate, owner.secret));
    expect((await keygate.authenticate(request({ cookie }))).ok).toBe(true);
    vi.setSystemTime(Date.now() + 61_000);
    expect(refused(await keygate.authenticate(request({ cookie })))).toEqual([
      401,
      'AUTH_REQUIRED',
      'session_key_expired',
    ]);
  });

  it('is charged to its key’s limits, and counted as its key’s use', async () => {
    const consume = vi.fn<RateLimiter['consume']>(() => ({ allowed: true, policies: [] }));
    const { keygate, admin } = setup({ limiter: { consume } });
    const owner = await admin({ rateLimit: { perSecond: 5, burst: 5 } });
    const cookie = signedIn(await signIn(keygate, owner.secret));
    await keygate.authenticate(request({ cookie }));
    expect(consume).toHaveBeenCalledTimes(1);
    expect(consume.mock.calls[0]![0]).toBe(owner.key.id);
    expect(consume.mock.calls[0]![1]).toEqual(
      expect.arrayContaining([expect.objectContaining({ capacity: 5, refillPerSecond: 5 })]),
    );
  });

  it('refuses a state-changing request another site sends with the cookie, unless from a trusted origin', async () => {
    const { keygate, admin } = setup({ trustedOrigins: ['https://admin.example.com'] });
    const cookie = signedIn(await signIn(keygate, (await admin()).secret));
    const from = (headers: Record<string, string>) =>
      keygate.authenticate(request({ cookie, method: 'POST', headers }));
    expect(refused(await from({ 'sec-fetch-site': 'same-site' }))).toEqual([
      403,
      'FORBIDDEN',
      'cross_site',
    ]);
    expect(
      refused(await from({ 'sec-fetch-site': 'cross-site', origin: 'https://evil.example' })),
    ).toEqual([403, 'FORBIDDEN', 'cross_site']);
    expect(
      (await from({ 'sec-fetch-site': 'same-site', origin: 'https://admin.example.com' })).ok,
    ).toBe(true);
    expect((await from({ 'sec-fetch-site': 'same-origin' })).ok).toBe(true);
    expect(
      (await keygate.authenticate(request({ cookie, headers: { 'sec-fetch-site': 'cross-site' } })))
        .ok,
    ).toBe(true);
  });

  it('an HTTPS session comes only as the __Host- cookie: the same token planted as a plain cookie is refused', async () => {
    const { keygate, admin } = setup();
    const result = await signIn(keygate, (await admin()).secret, 'https://keys.example.com');
    const secure = signedIn(result);
    expect(secure).toMatch(/^__Host-keygate_session=/);
    expect((await keygate.authenticate(request({ cookie: secure }))).ok).toBe(true);
    const planted = secure.replace('__Host-', '');
    expect(refused(await keygate.authenticate(request({ cookie: planted })))).toEqual([
      401,
      'AUTH_REQUIRED',
      'session_cookie_name',
    ]);
  });

  it('with the app’s own session resolver, a stale page-session cookie leaves the browser to it', async () => {
    const { keygate } = setup({
      session: () => ({ id: 'app_1', ownerId: 'org_default', scopes: ['read:data'] }),
    });
    const decision = await keygate.authenticate(
      request({ cookie: `keygate_session=${'a'.repeat(64)}` }),
    );
    expect(decision.ok && decision.principal.kind).toBe('session');
  });
});

describe('page sessions: lifetime and bounds', () => {
  it('ends unused after the idle time, and after the TTL however busy', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const { keygate, admin } = setup({ pageSessions: { ttlSeconds: 600, idleSeconds: 120 } });
    const owner = await admin();
    const cookie = signedIn(await signIn(keygate, owner.secret));
    // Used every 100 s: the idle end keeps moving, until the fixed end at 600 s.
    for (let at = 100; at < 600; at += 100) {
      vi.setSystemTime(Date.now() + 100_000);
      expect((await keygate.authenticate(request({ cookie }))).ok, `at ${at} s`).toBe(true);
    }
    vi.setSystemTime(Date.now() + 100_000);
    expect(refused(await keygate.authenticate(request({ cookie })))).toEqual([
      401,
      'AUTH_REQUIRED',
      'session_unknown',
    ]);
    const idle = signedIn(await signIn(keygate, owner.secret));
    vi.setSystemTime(Date.now() + 121_000);
    expect(refused(await keygate.authenticate(request({ cookie: idle })))[2]).toBe(
      'session_unknown',
    );
  });

  it('keeps at most maxPerKey sessions of a key: signing in past it ends the oldest', async () => {
    const { keygate, admin } = setup({ pageSessions: { maxPerKey: 2 } });
    const owner = await admin();
    const cookies = [];
    for (let i = 0; i < 3; i++) cookies.push(signedIn(await signIn(keygate, owner.secret)));
    const ok = await Promise.all(
      cookies.map(async (cookie) => (await keygate.authenticate(request({ cookie }))).ok),
    );
    expect(ok).toEqual([false, true, true]);
  });

  it('sign-ins purge sessions that are over; sign-out ends one everywhere and clears the cookie', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const sessions = new MemorySessionStore();
    const { keygate, admin, audited } = setup({
      pageSessions: { store: sessions, idleSeconds: 60, ttlSeconds: 60 },
    });
    const owner = await admin();
    for (let i = 0; i < 5; i++) signedIn(await signIn(keygate, owner.secret));
    expect(sessions.size).toBe(5);
    vi.setSystemTime(Date.now() + 61_000);
    const cookie = signedIn(await signIn(keygate, owner.secret));
    await vi.waitFor(() => expect(sessions.size).toBe(1));

    const out = await keygate.sessions.signOut(request({ cookie, method: 'POST' }), ORIGIN);
    expect(out.cookie).toBe('keygate_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict');
    expect(sessions.size).toBe(0);
    expect(refused(await keygate.authenticate(request({ cookie })))[2]).toBe('session_unknown');
    const ended = (await audited()).find((event) => event.action === 'session.ended');
    expect(ended).toMatchObject({ keyId: owner.key.id, reason: 'signed_out' });
  });

  it('a session store that cannot answer: 503, never a session taken for granted', async () => {
    const failing: SessionStore = {
      create: () => Promise.reject(new Error('down')),
      get: () => Promise.reject(new Error('down')),
      touch: () => Promise.reject(new Error('down')),
      delete: () => Promise.reject(new Error('down')),
      purge: () => Promise.reject(new Error('down')),
    };
    const { keygate, admin } = setup({ pageSessions: { store: failing } });
    const owner = await admin();
    expect(refused((await signIn(keygate, owner.secret)) as Failure)).toEqual([
      503,
      'SERVICE_UNAVAILABLE',
      'store_unavailable',
    ]);
    const cookie = `keygate_session=${'b'.repeat(64)}`;
    expect(refused(await keygate.authenticate(request({ cookie })))[1]).toBe('SERVICE_UNAVAILABLE');
  });

  it.each([
    [{ ttlSeconds: 10 }, /ttlSeconds/],
    [{ idleSeconds: 1.5 }, /idleSeconds/],
    [{ maxPerKey: 0 }, /maxPerKey/],
  ])('refuses pageSessions %j when created', (pageSessions, message) => {
    expect(() => createKeygate({ pageSessions })).toThrow(message);
  });

  it('is off without a session store, and off when asked', async () => {
    const bare = Object.assign(new MemoryKeyStore(), { sessions: undefined });
    const { keygate } = setup({ store: bare });
    expect(keygate.sessions.enabled).toBe(false);
    await expect(signIn(keygate, 'sk_live_x')).rejects.toThrow(/page sessions are off/);
    expect(() => createKeygate({ store: bare, pageSessions: { ttlSeconds: 600 } })).toThrow(
      /pageSessions needs a store/,
    );
    expect(setup({ pageSessions: false }).keygate.sessions.enabled).toBe(false);
  });
});
