import { afterEach, describe, expect, it } from 'vitest';
import { nodeHeaders, prepareGuard, toKeygate } from './adapter-kit.js';
import { KeygateConfigError } from './errors.js';
import { createKeygate, type Keygate } from './keygate.js';
import type { Authentication } from './types.js';

const open: Keygate[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((keygate) => keygate.close()));
});

async function authenticated(scopes: string[], resources: string[] | null = null) {
  const keygate = createKeygate({ authFailureLimit: false });
  open.push(keygate);
  const { secret } = await keygate.keys.create({ name: 'k', scopes, resources });
  const decision = await keygate.authenticate({
    method: 'GET',
    url: '/v1/websites/w_1/analytics',
    headers: new Headers({ 'x-api-key': secret }),
    ip: '203.0.113.10',
  });
  if (!decision.ok) throw new Error(decision.error.code);
  return decision;
}

describe('toKeygate', () => {
  it('takes an instance, or options for a new one, never both', async () => {
    const keygate = createKeygate({ authFailureLimit: false });
    open.push(keygate);
    expect(toKeygate({ keygate })).toBe(keygate);
    const conflicting = (() => {
      try {
        toKeygate({ keygate, pepper: 'x'.repeat(16) } as never);
      } catch (error) {
        return error;
      }
    })();
    expect(conflicting).toBeInstanceOf(KeygateConfigError);
    expect((conflicting as KeygateConfigError).code).toBe('CONFLICTING_OPTIONS');
    expect(() => toKeygate({ keygate: {} as never })).toThrow(/CONFLICTING_OPTIONS/);
    const fresh = toKeygate({ authFailureLimit: false });
    open.push(fresh);
    expect(fresh).not.toBe(keygate);
  });
});

describe('prepareGuard', () => {
  const params = (values: Record<string, string>) => (name: string) => values[name];

  it('refuses a bad declaration when the route is declared', () => {
    expect(() => prepareGuard('read:data', { resource: 42 as never })).toThrow(KeygateConfigError);
    expect(() => prepareGuard([])).toThrow(/INVALID_OPTION/);
  });

  it('fills the resource from route params or a function of the context', () => {
    const template = prepareGuard<object>('read:data', { resource: 'website:{websiteId}' });
    expect(template.resource({}, params({ websiteId: 'w_1' }))).toBe('website:w_1');
    expect(template.resource({}, params({}))).toBeNull();
    const byFunction = prepareGuard<{ id?: string }>('read:data', {
      resource: (ctx) => (ctx.id ? `link:${ctx.id}` : undefined),
    });
    expect(byFunction.resource({ id: 'l_9' }, params({}))).toBe('link:l_9');
    expect(byFunction.resource({}, params({}))).toBeNull();
    expect(prepareGuard('read:data').resource({}, params({ x: 'y' }))).toBeUndefined();
  });

  it('passes a request whose key meets the requirement', async () => {
    const auth = await authenticated(['read:data'], ['website:w_1']);
    const guard = prepareGuard<object>('read:data', { resource: 'website:{websiteId}' });
    expect(guard.check(auth, {}, params({ websiteId: 'w_1' }))).toBeNull();
  });

  it('refuses the others with the failure to answer, rate-limit headers included', async () => {
    const auth = await authenticated(['read:data'], ['website:w_1']);
    const guard = prepareGuard<object>('read:data', { resource: 'website:{websiteId}' });
    const denied = guard.check(auth, {}, params({ websiteId: 'w_2' }));
    expect(denied).toMatchObject({ status: 403, body: { code: 'ACCESS_DENIED' } });
    expect(denied!.headers['X-RateLimit-Limit']).toBe('10000');
    const scope = prepareGuard<object>({ any: ['write:llm', 'manage:keys'] }).check(
      auth,
      {},
      params({}),
    );
    expect(scope).toMatchObject({ status: 403, body: { code: 'INSUFFICIENT_SCOPE' } });
    expect(scope!.headers['WWW-Authenticate']).toContain('scope="write:llm manage:keys"');
  });

  it('answers AUTH_REQUIRED when no authentication ran before it', () => {
    const missing: Authentication | undefined = undefined;
    const failure = prepareGuard('read:data').check(missing, {}, params({}));
    expect(failure).toMatchObject({ status: 401, body: { code: 'AUTH_REQUIRED' } });
    expect(failure!.headers['WWW-Authenticate']).toBe('Bearer realm="api"');
  });
});

describe('nodeHeaders', () => {
  it('reads Node’s headers as Fetch does: repeated fields joined, absent ones null', () => {
    const headers = nodeHeaders({
      authorization: ['Bearer a', 'Bearer b'],
      cookie: ['a=1', 'b=2'],
      'x-api-key': ['k'],
    });
    expect(headers.get('authorization')).toBe('Bearer a, Bearer b');
    expect(headers.get('cookie')).toBe('a=1; b=2');
    expect(headers.get('x-api-key')).toBe('k');
    expect(headers.get('user-agent')).toBeNull();
  });

  it('reads Node’s rawHeaders the same way, whatever the case the client sent the names in', () => {
    const headers = nodeHeaders([
      'Authorization',
      'Bearer a',
      'Cookie',
      'a=1',
      'X-API-Key',
      'k',
      'authorization',
      'Bearer b',
      'cookie',
      'b=2',
      'X-Api-Keys',
      'not the key header',
    ]);
    expect(headers.get('authorization')).toBe('Bearer a, Bearer b');
    expect(headers.get('cookie')).toBe('a=1; b=2');
    expect(headers.get('x-api-key')).toBe('k');
    expect(headers.get('user-agent')).toBeNull();
  });
});
