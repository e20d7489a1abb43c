import { describe, expect, it, vi } from 'vitest';
import { createKeygate } from './keygate.js';
import type { KeygateRequest, RateLimiter, SessionResolver } from './types.js';

const request: KeygateRequest = {
  method: 'GET',
  url: '/v1/query/websites',
  headers: new Headers({ cookie: 'sid=abc' }),
  ip: '203.0.113.10',
};

function keygateWith(session: SessionResolver | undefined, limiter?: RateLimiter) {
  return createKeygate({
    session,
    authFailureLimit: false,
    logger: { warn: vi.fn(), error: vi.fn() },
    ...(limiter ? { limiter } : {}),
  });
}

describe('authenticateSession', () => {
  it('a session the resolver finds acts with the scopes it grants, limited as a secret key', async () => {
    const keygate = keygateWith((req) =>
      req.headers.get('cookie') === 'sid=abc'
        ? { id: 'sess_1', ownerId: 'org_1', scopes: ['read:data'], admin: true }
        : null,
    );
    const decision = await keygate.authenticate(request);
    if (!decision.ok) throw new Error(decision.body.code);
    expect(decision.principal).toEqual({
      kind: 'session',
      id: 'sess_1',
      ownerId: 'org_1',
      scopes: ['read:data'],
      resources: null,
      type: 'secret',
      environment: 'live',
      session: { id: 'sess_1', ownerId: 'org_1', scopes: ['read:data'], admin: true },
    });
    expect(decision.headers['X-RateLimit-Limit']).toBe('10000');
    await keygate.close();
  });

  it('no session (or no resolver): AUTH_REQUIRED, recorded as missing', async () => {
    for (const resolver of [undefined, async () => null]) {
      const keygate = keygateWith(resolver);
      const decision = await keygate.authenticate(request);
      expect(!decision.ok && [decision.status, decision.body.code]).toEqual([401, 'AUTH_REQUIRED']);
      await keygate.audit.flush();
      const [event] = await keygate.auditReader!.query({});
      expect(event).toMatchObject({ action: 'auth.failed', reason: 'missing', keyId: null });
      await keygate.close();
    }
  });

  it('a session is limited under its own subject', async () => {
    const consume = vi.fn<RateLimiter['consume']>(async () => ({ allowed: false, policies: [] }));
    const keygate = keygateWith(() => ({ id: 'sess_9', ownerId: 'org_1', scopes: [] }), {
      consume,
    });
    const decision = await keygate.authenticate(request);
    expect(!decision.ok && decision.body.code).toBe('RATE_LIMITED');
    expect(consume.mock.calls[0]![0]).toBe('session:sess_9');
    await keygate.close();
  });
});
