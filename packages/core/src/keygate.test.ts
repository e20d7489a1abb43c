import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { MemoryAuditSink } from './audit.js';
import { scopeRequirement } from './guard.js';
import { createKeyFormat } from './key-format.js';
import { createKeygate, type Keygate, type KeygateOptions } from './keygate.js';
import { MemoryKeyStore } from './memory-store.js';
import type {
  AuditEvent,
  AuditQuery,
  AuditReader,
  AuditSink,
  Decision,
  KeygateRequest,
  RateLimiter,
} from './types.js';

const open: Keygate[] = [];

function setup(options: KeygateOptions = {}) {
  const store = new MemoryKeyStore();
  const logger = { warn: vi.fn(), error: vi.fn() };
  const keygate = createKeygate({ store, authFailureLimit: false, logger, ...options });
  open.push(keygate);
  return { store, keygate, logger };
}

afterEach(async () => {
  vi.useRealTimers();
  await Promise.all(open.splice(0).map((keygate) => keygate.close()));
});

function request(
  init: {
    key?: string;
    url?: string;
    ip?: string;
    method?: string;
    headers?: Record<string, string>;
  } = {},
): KeygateRequest {
  const headers = new Headers(init.headers);
  if (init.key !== undefined) headers.set('authorization', `Bearer ${init.key}`);
  return {
    method: init.method ?? 'GET',
    url: init.url ?? '/v1/query/websites',
    headers,
    ip: 'ip' in init ? init.ip : '203.0.113.10',
  };
}

function failed(decision: Decision) {
  expect(decision.ok).toBe(false);
  if (decision.ok) throw new Error('expected a failure');
  return decision;
}

function succeeded(decision: Decision) {
  expect(decision.ok, decision.ok ? '' : decision.error.code).toBe(true);
  if (!decision.ok) throw new Error('expected a success');
  return decision;
}

/** A sink that wants every event, successes included (it keeps no usage counts). */
class EveryEventSink implements AuditSink, AuditReader {
  readonly events: AuditEvent[] = [];
  async write(events: readonly AuditEvent[]): Promise<void> {
    this.events.push(...events);
  }
  async query(query: AuditQuery): Promise<AuditEvent[]> {
    return this.events.slice(-(query.limit ?? 100)).reverse();
  }
}

async function auditOf(keygate: Keygate): Promise<AuditEvent[]> {
  await keygate.audit.flush();
  return (await keygate.auditReader!.query({ limit: 10_000 })).reverse();
}

describe('authenticate: success', () => {
  it('carries the principal and the rate-limit headers', async () => {
    const { keygate } = setup();
    const issued = await keygate.keys.create({
      name: 'Reporting',
      ownerId: 'org_1',
      scopes: ['read:data'],
      resources: ['website:w_1'],
    });
    const { principal, headers } = succeeded(
      await keygate.authenticate(request({ key: issued.secret })),
    );
    expect(principal).toMatchObject({
      kind: 'key',
      id: issued.key.id,
      ownerId: 'org_1',
      scopes: ['read:data'],
      resources: ['website:w_1'],
      type: 'secret',
      environment: 'live',
    });
    expect(principal.kind === 'key' && principal.key.start).toBe(issued.key.start);
    expect(principal.kind === 'key' && principal.key).not.toHaveProperty('digest');
    expect(headers).toMatchObject({
      'X-RateLimit-Limit': '10000',
      'X-RateLimit-Remaining': '9999',
      'RateLimit-Policy': '"burst";q=10000;w=10, "daily";q=10000000;w=86400',
    });
    expect(Number(headers['X-RateLimit-Reset'])).toBeGreaterThanOrEqual(
      Math.floor(Date.now() / 1_000),
    );
    expect(headers.RateLimit).toMatch(/^"burst";r=9999;t=1, "daily";r=9999999;t=\d+$/);
    expect(headers['Retry-After']).toBeUndefined();
  });

  it('public keys get the public tier', async () => {
    const { keygate } = setup();
    const issued = await keygate.keys.create({
      name: 'w',
      type: 'public',
      scopes: ['track:events'],
    });
    const { headers, principal } = succeeded(
      await keygate.authenticate(request({ key: issued.secret })),
    );
    expect(principal.type).toBe('public');
    expect(headers['X-RateLimit-Limit']).toBe('1000');
  });

  it('accepts the key from x-api-key and from the query string, which the audit path leaves out', async () => {
    const { keygate } = setup({ auditSinks: [new EveryEventSink()] });
    const issued = await keygate.keys.create({ name: 'k', scopes: ['read:data'] });
    succeeded(await keygate.authenticate(request({ headers: { 'x-api-key': issued.secret } })));
    succeeded(
      await keygate.authenticate(
        request({ url: `/v1/query/websites?api_key=${issued.secret}&x=1` }),
      ),
    );
    const events = await auditOf(keygate);
    const successes = events.filter((e) => e.action === 'auth.succeeded');
    expect(successes).toHaveLength(2);
    expect(successes[1]).toMatchObject({
      path: '/v1/query/websites',
      keyId: issued.key.id,
      keyStart: issued.key.start,
    });
    expect(JSON.stringify(events)).not.toContain(issued.secret);
  });

  it('records who called, from where, with the request id', async () => {
    const { keygate } = setup({ auditSinks: [new EveryEventSink()] });
    const issued = await keygate.keys.create({
      name: 'k',
      ownerId: 'org_1',
      scopes: ['read:data'],
    });
    await keygate.authenticate(
      request({
        key: issued.secret,
        method: 'POST',
        url: 'https://api.example.com/v1/events?x=1',
        ip: '198.51.100.4',
        headers: { 'user-agent': 'curl/8', 'x-request-id': 'req-123' },
      }),
    );
    await keygate.authenticate(
      request({ key: issued.secret, headers: { 'x-request-id': 'bad id with spaces' } }),
    );
    const [first, second] = (await auditOf(keygate)).filter((e) => e.action === 'auth.succeeded');
    expect(first).toMatchObject({
      action: 'auth.succeeded',
      outcome: 'success',
      reason: null,
      keyId: issued.key.id,
      keyStart: issued.key.start,
      ownerId: 'org_1',
      ip: '198.51.100.4',
      userAgent: 'curl/8',
      method: 'POST',
      path: '/v1/events',
      requestId: 'req-123',
    });
    expect(second!.requestId).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe('authenticate: secrets outside the key sources', () => {
  it('a key in the path, user agent or request id is recorded by its start only', async () => {
    const { keygate } = setup({ auditSinks: [new EveryEventSink()] });
    const issued = await keygate.keys.create({ name: 'k', scopes: ['read:data'] });
    const leaked = await keygate.keys.create({ name: 'leaked', scopes: [] });
    await keygate.authenticate(
      request({
        key: issued.secret,
        url: `/v1/query/websites;api_key=${leaked.secret}/${'x'.repeat(2040)}${leaked.secret}`,
        headers: {
          'user-agent': `${'u'.repeat(500)} ${leaked.secret}`,
          'x-request-id': leaked.secret,
        },
      }),
    );
    await keygate.authenticate(request({ url: `/v1/${leaked.secret.replace(/_/g, '%5F')}` }));
    const events = await auditOf(keygate);
    const text = JSON.stringify(events);
    expect(text).not.toContain(leaked.secret.slice(leaked.key.start.length, -6));
    const [served, refused] = events.filter((e) => e.action.startsWith('auth.'));
    expect(served!.path).toMatch(new RegExp(`^/v1/query/websites;api_key=${leaked.key.start}/x+$`));
    expect(served!.userAgent).toBe(`${'u'.repeat(500)} ${leaked.key.start.slice(0, 11)}`);
    expect(served!.requestId).toBe(leaked.key.start);
    expect(refused!.path).toBe(`/v1/${leaked.key.start}`);
  });

  it('restrictions see the whole path, not the shortened one recorded', async () => {
    const { keygate } = setup();
    const issued = await keygate.keys.create({
      name: 'k',
      scopes: ['read:data'],
      restrictions: { endpoints: ['GET /v1/*'] },
    });
    const long = `/v1/${'a'.repeat(3000)}`;
    succeeded(await keygate.authenticate(request({ key: issued.secret, url: long })));
    const refused = failed(
      await keygate.authenticate(request({ key: issued.secret, url: `${long}/rotate` })),
    );
    expect(refused.error.reason).toBe('restricted_endpoint');
  });
});

describe('authenticate: a pepper introduced later', () => {
  it('keys made before it keep working; new ones are peppered', async () => {
    const store = new MemoryKeyStore();
    const before = setup({ store }).keygate;
    const old = await before.keys.create({ name: 'before', scopes: ['read:data'] });
    const { keygate } = setup({ store, pepper: 'pepper-0123456789abcdef' });
    succeeded(await keygate.authenticate(request({ key: old.secret })));
    const fresh = await keygate.keys.create({ name: 'after', scopes: ['read:data'] });
    succeeded(await keygate.authenticate(request({ key: fresh.secret })));
    expect((await store.get(fresh.key.id))?.digestVersion).toBe(1);
    // Rotation moves a key to the peppered digest.
    const rotated = await keygate.keys.rotate(old.key.id);
    expect((await store.get(old.key.id))?.digestVersion).toBe(1);
    succeeded(await keygate.authenticate(request({ key: rotated.secret })));
    expect(failed(await keygate.authenticate(request({ key: old.secret }))).error.code).toBe(
      'INVALID_API_KEY',
    );
    // Without it, the peppered keys are unknown.
    expect(failed(await before.authenticate(request({ key: fresh.secret }))).error.code).toBe(
      'INVALID_API_KEY',
    );
  });

  it('an unknown key costs one lookup while the store holds only peppered keys', async () => {
    const store = new MemoryKeyStore();
    const { keygate } = setup({ store, pepper: 'pepper-0123456789abcdef', cache: false });
    await keygate.keys.create({ name: 'after', scopes: [] });
    const lookups = vi.spyOn(store, 'findByDigest');
    failed(
      await keygate.authenticate(
        request({ key: createKeyFormat().generate('secret', 'live').secret }),
      ),
    );
    expect(lookups).toHaveBeenCalledTimes(1);
  });
});

describe('authenticate: failures', () => {
  it('no key and no session: AUTH_REQUIRED with a Bearer challenge', async () => {
    const { keygate } = setup();
    const { error, headers } = failed(await keygate.authenticate(request()));
    expect(error.code).toBe('AUTH_REQUIRED');
    expect(error.status).toBe(401);
    expect(error.wwwAuthenticate).toBe('Bearer realm="api"');
    expect(error.toJSON()).toEqual({
      success: false,
      error: 'Authentication required',
      code: 'AUTH_REQUIRED',
    });
    expect(headers).toEqual({});
    expect((await auditOf(keygate)).map((e) => e.reason)).toEqual(['missing']);
  });

  it('each reason is audited; the client sees one message; no secret is recorded anywhere', async () => {
    const { keygate, store } = setup({ environments: ['live'] });
    const secrets: string[] = [];
    const create = async (input: Parameters<Keygate['keys']['create']>[0]) => {
      const issued = await keygate.keys.create(input);
      secrets.push(issued.secret);
      return issued;
    };
    const revoked = await create({ name: 'revoked', scopes: ['read:data'] });
    await keygate.keys.revoke(revoked.key.id);
    const expired = await create({ name: 'expired', scopes: ['read:data'] });
    await store.update(expired.key.id, { expiresAt: new Date(Date.now() - 1_000) });
    const testKey = await create({ name: 'test', environment: 'test', scopes: ['read:data'] });
    const fenced = await create({
      name: 'fenced',
      scopes: ['read:data'],
      restrictions: { ips: ['10.0.0.0/8'] },
    });
    const limited = await create({
      name: 'limited',
      scopes: ['read:data'],
      rateLimit: { burst: 1, perSecond: 0.001 },
    });
    const unknown = createKeyFormat().generate('secret', 'live').secret;
    const malformed = `sk_live_${'x'.repeat(30)}`;
    secrets.push(unknown, malformed);

    const attempts: Array<[string, KeygateRequest, string, number]> = [
      ['malformed', request({ key: malformed }), 'INVALID_API_KEY', 401],
      ['unknown', request({ key: unknown }), 'INVALID_API_KEY', 401],
      ['revoked', request({ key: revoked.secret }), 'INVALID_API_KEY', 401],
      ['expired', request({ key: expired.secret }), 'INVALID_API_KEY', 401],
      ['wrong_environment', request({ key: testKey.secret }), 'INVALID_API_KEY', 401],
      ['restricted_ip', request({ key: fenced.secret, ip: '192.168.1.1' }), 'FORBIDDEN', 403],
    ];
    const messages: string[] = [];
    for (const [reason, req, code, status] of attempts) {
      const { error } = failed(await keygate.authenticate(req));
      expect(error.code, reason).toBe(code);
      expect(error.status, reason).toBe(status);
      messages.push(error.message, JSON.stringify(error.toJSON()), error.wwwAuthenticate ?? '');
      if (code === 'INVALID_API_KEY') {
        expect(error.message).toBe('Invalid API key');
        expect(error.wwwAuthenticate).toBe('Bearer realm="api", error="invalid_token"');
      }
    }
    succeeded(await keygate.authenticate(request({ key: limited.secret })));
    const rateLimited = failed(await keygate.authenticate(request({ key: limited.secret })));
    expect(rateLimited.error.code).toBe('RATE_LIMITED');
    expect(rateLimited.error.status).toBe(429);
    expect(Number(rateLimited.headers['Retry-After'])).toBeGreaterThanOrEqual(1);
    expect(rateLimited.headers['X-RateLimit-Remaining']).toBe('0');
    messages.push(rateLimited.error.message);

    const events = await auditOf(keygate);
    const failures = events.filter((e) => e.action === 'auth.failed');
    expect(failures.map((e) => e.reason)).toEqual([
      'malformed',
      'unknown',
      'revoked',
      'expired',
      'wrong_environment',
      'restricted_ip',
      'rate_limited',
    ]);
    expect(failures.every((e) => e.outcome === 'failure')).toBe(true);
    const byReason = Object.fromEntries(failures.map((e) => [e.reason, e]));
    expect(byReason.malformed).toMatchObject({ keyId: null, keyStart: null });
    expect(byReason.unknown).toMatchObject({ keyId: null, keyStart: unknown.slice(0, 14) });
    expect(byReason.revoked).toMatchObject({ keyId: revoked.key.id, keyStart: revoked.key.start });
    expect(byReason.restricted_ip).toMatchObject({ keyId: fenced.key.id, ip: '192.168.1.1' });

    const everything = JSON.stringify(events) + messages.join('\n');
    for (const secret of secrets) expect(everything).not.toContain(secret);
  });

  it('a key restricted to some endpoints is refused elsewhere', async () => {
    const { keygate } = setup();
    const issued = await keygate.keys.create({
      name: 'k',
      scopes: ['read:data'],
      restrictions: { endpoints: ['GET /v1/websites/*/analytics'] },
    });
    succeeded(
      await keygate.authenticate(
        request({ key: issued.secret, url: '/v1/websites/w_1/analytics?x=1' }),
      ),
    );
    const { error } = failed(
      await keygate.authenticate(
        request({ key: issued.secret, url: '/v1/llm/traces', method: 'POST' }),
      ),
    );
    expect(error.code).toBe('FORBIDDEN');
    expect(error.reason).toBe('restricted_endpoint');
  });

  it('conflicting keys: INVALID_REQUEST 400', async () => {
    const { keygate } = setup();
    const a = await keygate.keys.create({ name: 'a', scopes: [] });
    const b = await keygate.keys.create({ name: 'b', scopes: [] });
    const { error } = failed(
      await keygate.authenticate(request({ key: a.secret, headers: { 'x-api-key': b.secret } })),
    );
    expect(error.code).toBe('INVALID_REQUEST');
    expect(error.status).toBe(400);
    expect((await auditOf(keygate)).at(-1)?.reason).toBe('conflicting_keys');
  });

  it('an environment limited to test keys refuses live keys', async () => {
    const { keygate } = setup({ environments: ['test'] });
    const live = await keygate.keys.create({ name: 'live', scopes: [] });
    const test = await keygate.keys.create({ name: 'test', environment: 'test', scopes: [] });
    expect(failed(await keygate.authenticate(request({ key: live.secret }))).error.code).toBe(
      'INVALID_API_KEY',
    );
    succeeded(await keygate.authenticate(request({ key: test.secret })));
  });

  it('too many failures from one IP are refused; a key that verifies is still served there', async () => {
    const store = new MemoryKeyStore();
    const { keygate } = setup({
      store,
      authFailureLimit: { points: 2, durationSeconds: 60, blockSeconds: 30 },
    });
    const issued = await keygate.keys.create({ name: 'k', scopes: [] });
    const guess = () => createKeyFormat().generate('secret', 'live').secret;
    failed(await keygate.authenticate(request({ key: guess(), ip: '198.51.100.66' })));
    failed(await keygate.authenticate(request({ key: guess(), ip: '198.51.100.66' })));
    const blocked = failed(
      await keygate.authenticate(request({ key: guess(), ip: '198.51.100.66' })),
    );
    expect(blocked.error.code).toBe('RATE_LIMITED');
    expect(Number(blocked.headers['Retry-After'])).toBeGreaterThanOrEqual(29);
    expect(
      failed(await keygate.authenticate(request({ key: 'sk_live_junk', ip: '198.51.100.66' })))
        .error.code,
    ).toBe('RATE_LIMITED');
    // Behind one shared IP (an office, a proxy without proxy trust), other clients go on working.
    succeeded(await keygate.authenticate(request({ key: issued.secret, ip: '198.51.100.66' })));
    succeeded(await keygate.authenticate(request({ key: issued.secret, ip: '198.51.100.67' })));
    expect(
      failed(await keygate.authenticate(request({ key: guess(), ip: '198.51.100.67' }))).error.code,
    ).toBe('INVALID_API_KEY');
  });

  it('a blocked client’s repeated guess costs no store lookup', async () => {
    const store = new MemoryKeyStore();
    const { keygate } = setup({
      store,
      authFailureLimit: { points: 1, durationSeconds: 60, blockSeconds: 30 },
    });
    const guess = createKeyFormat().generate('secret', 'live').secret;
    failed(await keygate.authenticate(request({ key: guess, ip: '198.51.100.70' })));
    const lookups = vi.spyOn(store, 'findByDigest');
    for (let i = 0; i < 5; i++) {
      const refused = failed(
        await keygate.authenticate(request({ key: guess, ip: '198.51.100.70' })),
      );
      expect(refused.error.code).toBe('RATE_LIMITED');
    }
    expect(lookups).not.toHaveBeenCalled();
  });

  it('requests without a client IP are never counted together', async () => {
    const { keygate } = setup({
      authFailureLimit: { points: 2, durationSeconds: 60, blockSeconds: 30 },
    });
    const issued = await keygate.keys.create({ name: 'k', scopes: [] });
    for (let i = 0; i < 10; i++) {
      const refused = failed(await keygate.authenticate(request({ key: 'junk', ip: undefined })));
      expect(refused.error.code).toBe('INVALID_API_KEY');
    }
    succeeded(await keygate.authenticate(request({ key: issued.secret, ip: undefined })));
  });

  it('counts IPv6 clients by /64, and an IPv4-mapped address as its IPv4 address', async () => {
    const { keygate } = setup({
      authFailureLimit: { points: 2, durationSeconds: 60, blockSeconds: 30 },
    });
    const code = async (ip: string) => {
      const decision = await keygate.authenticate(request({ key: 'junk', ip }));
      return decision.ok ? 'ok' : decision.error.code;
    };
    expect(await code('2001:db8:1:2::1')).toBe('INVALID_API_KEY');
    expect(await code('2001:db8:1:2:ffff::9')).toBe('INVALID_API_KEY');
    expect(await code('2001:0db8:0001:0002::abcd')).toBe('RATE_LIMITED');
    expect(await code('2001:db8:1:3::1')).toBe('INVALID_API_KEY');

    expect(await code('::ffff:192.0.2.5')).toBe('INVALID_API_KEY');
    expect(await code('192.0.2.5')).toBe('INVALID_API_KEY');
    expect(await code('::ffff:192.0.2.5')).toBe('RATE_LIMITED');
    expect(await code('192.0.2.6')).toBe('INVALID_API_KEY');
  });
});

describe('authenticate: hostile input', () => {
  it('never answers 5xx and never throws, whatever the headers, URL and IP', async () => {
    const { keygate } = setup({ session: () => null });
    const issued = await keygate.keys.create({ name: 'k', scopes: [] });
    const text = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 200 }),
      fc.constant(issued.secret),
      fc.constant(`Bearer ${issued.secret}`),
      fc.constant('x'.repeat(20_000)),
    );
    const header = fc.option(text, { nil: null });
    const url = fc.oneof(
      text,
      text.map((t) => `/v1/x?api_key=${t}`),
      text.map((t) => `/v1/x?api_key[]=${t}&api_key=${t}`),
    );
    await fc.assert(
      fc.asyncProperty(
        header,
        header,
        header,
        url,
        fc.option(text, { nil: undefined }),
        async (authorization, apiKey, origin, href, ip) => {
          const values: Record<string, string | null> = {
            authorization,
            'x-api-key': apiKey,
            origin,
            'user-agent': origin,
            'x-request-id': apiKey,
          };
          const decision = await keygate.authenticate({
            method: 'GET',
            url: href,
            headers: { get: (name) => values[name] ?? null },
            ip,
          });
          if (!decision.ok) expect(decision.error.status).toBeLessThan(500);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('authenticate: degraded backends', () => {
  it('a failing store: 503 for an uncached key, the cached key keeps working (also past its TTL)', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(new Date('2026-03-10T12:00:00Z'));
    const store = new MemoryKeyStore();
    const { keygate, logger } = setup({ store, cache: { ttlMs: 1_000, staleIfErrorMs: 60_000 } });
    const cached = await keygate.keys.create({ name: 'cached', scopes: ['read:data'] });
    const cold = await keygate.keys.create({ name: 'cold', scopes: ['read:data'] });
    succeeded(await keygate.authenticate(request({ key: cached.secret })));

    vi.spyOn(store, 'findByDigest').mockRejectedValue(new Error('connection refused'));
    succeeded(await keygate.authenticate(request({ key: cached.secret })));
    const unavailable = failed(await keygate.authenticate(request({ key: cold.secret })));
    expect(unavailable.error.code).toBe('SERVICE_UNAVAILABLE');
    expect(unavailable.error.status).toBe(503);
    expect(unavailable.headers['Retry-After']).toBe('1');
    expect(logger.warn).toHaveBeenCalled();

    vi.setSystemTime(new Date('2026-03-10T12:00:30Z'));
    succeeded(await keygate.authenticate(request({ key: cached.secret })));
    vi.setSystemTime(new Date('2026-03-10T12:01:02Z'));
    expect(failed(await keygate.authenticate(request({ key: cached.secret }))).error.code).toBe(
      'SERVICE_UNAVAILABLE',
    );
    const reasons = (await auditOf(keygate)).map((e) => e.reason);
    expect(reasons.filter((r) => r === 'store_unavailable')).toHaveLength(2);
    const allText = JSON.stringify(await auditOf(keygate));
    expect(allText).not.toContain(cold.secret);
  });

  it('a limiter that throws: 503', async () => {
    const limiter: RateLimiter = {
      consume: vi.fn(async () => Promise.reject(new Error('redis down'))),
    };
    const { keygate } = setup({ limiter });
    const issued = await keygate.keys.create({ name: 'k', scopes: [] });
    const { error, headers } = failed(await keygate.authenticate(request({ key: issued.secret })));
    expect(error.code).toBe('SERVICE_UNAVAILABLE');
    expect(error.status).toBe(503);
    expect(headers['Retry-After']).toBe('1');
    expect((await auditOf(keygate)).at(-1)).toMatchObject({
      reason: 'limiter_unavailable',
      keyId: issued.key.id,
    });
  });

  it('limiter: false adds no limit and no headers', async () => {
    const { keygate } = setup({ limiter: false });
    const issued = await keygate.keys.create({ name: 'k', scopes: [], rateLimit: { burst: 1 } });
    succeeded(await keygate.authenticate(request({ key: issued.secret })));
    expect(succeeded(await keygate.authenticate(request({ key: issued.secret }))).headers).toEqual(
      {},
    );
  });
});

describe('authenticate: last use', () => {
  it('writes last_used_at in one batch, once per key per interval, and on close()', async () => {
    vi.useFakeTimers();
    vi.setSystemTime(new Date('2026-03-10T12:00:00Z'));
    const store = new MemoryKeyStore();
    const touch = vi.spyOn(store, 'touchLastUsed');
    const { keygate } = setup({ store, lastUsedIntervalMs: 60_000 });
    const a = await keygate.keys.create({ name: 'a', scopes: [] });
    const b = await keygate.keys.create({ name: 'b', scopes: [] });
    for (let i = 0; i < 3; i++) succeeded(await keygate.authenticate(request({ key: a.secret })));
    succeeded(await keygate.authenticate(request({ key: b.secret })));
    expect(touch).not.toHaveBeenCalled();

    await vi.advanceTimersByTimeAsync(5_000);
    expect(touch).toHaveBeenCalledTimes(1);
    const at = new Date('2026-03-10T12:00:00Z');
    expect(touch.mock.calls[0]![0]).toEqual([
      { id: a.key.id, at },
      { id: b.key.id, at },
    ]);
    expect((await keygate.keys.get(a.key.id)).lastUsedAt).toEqual(at);

    await vi.advanceTimersByTimeAsync(20_000);
    succeeded(await keygate.authenticate(request({ key: a.secret })));
    await vi.advanceTimersByTimeAsync(30_000);
    expect(touch).toHaveBeenCalledTimes(1);

    vi.setSystemTime(new Date('2026-03-10T12:01:00Z'));
    succeeded(await keygate.authenticate(request({ key: a.secret })));
    expect(touch).toHaveBeenCalledTimes(1);
    await keygate.close();
    expect(touch).toHaveBeenCalledTimes(2);
    expect(touch.mock.calls[1]![0]).toEqual([
      { id: a.key.id, at: new Date('2026-03-10T12:01:00Z') },
    ]);
  });

  it('a failing touchLastUsed is logged and does not fail requests', async () => {
    const store = new MemoryKeyStore();
    vi.spyOn(store, 'touchLastUsed').mockRejectedValue(new Error('db down'));
    const { keygate, logger } = setup({ store });
    const issued = await keygate.keys.create({ name: 'k', scopes: [] });
    succeeded(await keygate.authenticate(request({ key: issued.secret })));
    await keygate.close();
    expect(logger.warn).toHaveBeenCalledWith(
      '[keygate] could not record last use of keys:',
      expect.any(Error),
    );
  });
});

describe('authenticate: sessions', () => {
  it('uses the session resolver when no key is sent', async () => {
    const session = vi.fn(() => ({
      id: 'sess_1',
      ownerId: 'org_1',
      scopes: ['read:data'],
      admin: true,
    }));
    const { keygate } = setup({ session, auditSinks: [new EveryEventSink()] });
    const { principal, headers } = succeeded(
      await keygate.authenticate(request({ headers: { cookie: 'sid=1' } })),
    );
    expect(principal).toMatchObject({
      kind: 'session',
      id: 'sess_1',
      ownerId: 'org_1',
      scopes: ['read:data'],
      resources: null,
      type: 'secret',
      environment: 'live',
    });
    expect(headers['X-RateLimit-Limit']).toBe('10000');
    expect((await auditOf(keygate)).at(-1)).toMatchObject({
      action: 'auth.succeeded',
      keyId: 'sess_1',
      detail: { via: 'session' },
    });
  });

  it('a key wins over a session; no session is AUTH_REQUIRED', async () => {
    const session = vi.fn(async () => null);
    const { keygate } = setup({ session });
    expect(failed(await keygate.authenticate(request())).error.code).toBe('AUTH_REQUIRED');
    expect(session).toHaveBeenCalledTimes(1);
    const issued = await keygate.keys.create({ name: 'k', scopes: [] });
    expect(
      succeeded(await keygate.authenticate(request({ key: issued.secret }))).principal.kind,
    ).toBe('key');
    expect(session).toHaveBeenCalledTimes(1);
  });

  it('an empty Bearer header falls back to the session', async () => {
    const { keygate } = setup({ session: () => ({ id: 'sess_1', ownerId: 'org_1', scopes: [] }) });
    expect(
      succeeded(await keygate.authenticate(request({ headers: { authorization: 'Bearer ' } })))
        .principal.kind,
    ).toBe('session');
  });
});

describe('authorize', () => {
  it('decides scope and resource checks and audits them', async () => {
    const { keygate } = setup({ auditSinks: [new EveryEventSink()] });
    const issued = await keygate.keys.create({
      name: 'k',
      scopes: ['read:data'],
      resources: ['website:w_1'],
    });
    const req = request({ key: issued.secret, url: '/v1/websites/w_2/analytics' });
    const { principal } = succeeded(await keygate.authenticate(req));
    const requirement = scopeRequirement('read:data');
    expect(keygate.authorize(principal, requirement, req).ok).toBe(true);
    expect(keygate.authorize(principal, requirement, req, 'website:w_1').ok).toBe(true);
    expect(failed(keygate.authorize(principal, requirement, req, 'website:w_2')).error.code).toBe(
      'ACCESS_DENIED',
    );
    expect(
      failed(keygate.authorize(principal, scopeRequirement('write:llm'), req)).error.code,
    ).toBe('INSUFFICIENT_SCOPE');
    expect(failed(keygate.authorize(undefined, requirement, req)).error.code).toBe('AUTH_REQUIRED');

    const events = await auditOf(keygate);
    const checks = events.filter(
      (e) => e.action !== 'key.created' && e.action !== 'auth.succeeded',
    );
    expect(checks.map((e) => [e.action, e.outcome, e.reason])).toEqual([
      ['scope.checked', 'success', null],
      ['resource.checked', 'success', null],
      ['resource.checked', 'failure', 'resource_not_granted'],
      ['scope.checked', 'failure', 'insufficient_scope'],
    ]);
    expect(checks[2]!.detail).toEqual({
      required: ['read:data'],
      mode: 'all',
      granted: ['read:data'],
      resource: 'website:w_2',
    });
    const auth = events.find((e) => e.action === 'auth.succeeded')!;
    expect(new Set(checks.map((e) => e.requestId))).toEqual(new Set([auth.requestId]));
  });
});

describe('the audit queue', () => {
  it('a sink that never answers does not hold up authenticate', async () => {
    let release!: () => void;
    const sinkPromise = new Promise<void>((resolve) => {
      release = resolve;
    });
    let settled = false;
    void sinkPromise.then(() => {
      settled = true;
    });
    const sink: AuditSink = { write: vi.fn(() => sinkPromise) };
    const { keygate } = setup({ auditSinks: [sink], auditQueue: { batchSize: 1 } });
    const issued = await keygate.keys.create({ name: 'k', scopes: [] });
    expect(sink.write).toHaveBeenCalled();
    for (let i = 0; i < 5; i++)
      succeeded(await keygate.authenticate(request({ key: issued.secret })));
    expect(settled).toBe(false);
    expect(keygate.audit.pending).toBeGreaterThanOrEqual(5);
    release();
  });

  it.each([
    ['drop-newest', ['/1', '/2']],
    ['drop-oldest', ['/3', '/4']],
  ] as const)('%s with a tiny queue keeps the right events', async (onQueueFull, kept) => {
    const sink = new MemoryAuditSink();
    const { keygate } = setup({
      auditSinks: [sink],
      auditQueue: { maxQueue: 2, onQueueFull, flushIntervalMs: 60_000 },
    });
    for (let i = 1; i <= 4; i++) await keygate.authenticate(request({ url: `/${i}` }));
    expect(keygate.audit.dropped).toBe(2);
    await keygate.audit.flush();
    expect((await sink.query({})).map((e) => e.path).reverse()).toEqual(kept);
  });

  it('close() flushes the queue', async () => {
    const sink = new MemoryAuditSink();
    const { keygate } = setup({ auditSinks: [sink], auditQueue: { flushIntervalMs: 60_000 } });
    await keygate.authenticate(request());
    expect(await sink.query({})).toHaveLength(0);
    await keygate.close();
    expect((await sink.query({})).map((e) => e.reason)).toEqual(['missing']);
  });

  it('reads back through a configured reader, or none when no sink can be read', () => {
    const sink: AuditSink = { write: async () => {} };
    expect(setup({ auditSinks: [sink] }).keygate.auditReader).toBeNull();
    const reader = new MemoryAuditSink();
    expect(setup({ auditSinks: [sink], auditReader: reader }).keygate.auditReader).toBe(reader);
  });
});

describe('createKeygate: configuration', () => {
  it('refuses bad options when called, not per request', () => {
    expect(() => createKeygate({ sources: [] })).toThrow(/at least one key source/);
    expect(() => createKeygate({ environments: [] })).toThrow(/environments/);
    expect(() => createKeygate({ environments: ['prod' as 'live'] })).toThrow(/environments/);
    expect(() => createKeygate({ pepper: 'short' })).toThrow(/pepper/);
    expect(() =>
      createKeygate({ prefixes: { secret: { live: 'x', test: 'y' } } as never }),
    ).toThrow(/prefix/);
  });

  it('only reads the enabled sources', async () => {
    const { keygate } = setup({ sources: ['header'] });
    const issued = await keygate.keys.create({ name: 'k', scopes: [] });
    expect(failed(await keygate.authenticate(request({ key: issued.secret }))).error.code).toBe(
      'AUTH_REQUIRED',
    );
    succeeded(await keygate.authenticate(request({ headers: { 'x-api-key': issued.secret } })));
  });
});

describe('outage warnings', () => {
  it('warns once per cause while a backend stays down, not once per request', async () => {
    const { store, keygate, logger } = setup();
    vi.spyOn(store, 'findByDigest').mockRejectedValue(new Error('connection refused'));
    const unknown = createKeyFormat().generate('secret', 'live').secret;

    for (let i = 0; i < 20; i++) {
      expect(failed(await keygate.authenticate(request({ key: unknown }))).error.code).toBe(
        'SERVICE_UNAVAILABLE',
      );
    }

    const outageWarnings = logger.warn.mock.calls.filter(([message]) =>
      String(message).includes('key store unavailable'),
    );
    expect(outageWarnings).toHaveLength(1);
  });

  it('says how many failures were not logged when it warns again', async () => {
    vi.useFakeTimers({ now: new Date('2026-01-01T00:00:00Z'), toFake: ['Date'] });
    const failing: RateLimiter = { consume: () => Promise.reject(new Error('redis down')) };
    const { keygate, logger } = setup({ limiter: failing });
    const { secret } = await keygate.keys.create({ name: 'k', scopes: ['read:data'] });

    for (let i = 0; i < 3; i++) await keygate.authenticate(request({ key: secret }));
    vi.setSystemTime(new Date('2026-01-01T00:00:11Z'));
    await keygate.authenticate(request({ key: secret }));

    const messages = logger.warn.mock.calls.map(([message]) => String(message));
    expect(messages).toEqual([
      '[keygate] rate limiter unavailable:',
      '[keygate] rate limiter unavailable (2 more since the last warning):',
    ]);
  });
});
