import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { prepareGuard, readBody, renderFailure, toKeygate } from './adapter-kit.js';
import { ERROR_CODES, KeygateConfigError, KeygateError } from './errors.js';
import { createKeygate } from './keygate.js';

describe('error codes', () => {
  it('map to the documented statuses', () => {
    const statuses = Object.fromEntries(
      Object.entries(ERROR_CODES).map(([code, spec]) => [code, spec.status]),
    );
    expect(statuses).toEqual({
      AUTH_REQUIRED: 401,
      INVALID_API_KEY: 401,
      INVALID_REQUEST: 400,
      INSUFFICIENT_SCOPE: 403,
      ACCESS_DENIED: 403,
      FORBIDDEN: 403,
      NOT_FOUND: 404,
      UNSUPPORTED_MEDIA_TYPE: 415,
      RATE_LIMITED: 429,
      SERVICE_UNAVAILABLE: 503,
    });
  });

  it('render as { success: false, error, code } with the right challenge', () => {
    const invalid = renderFailure(new KeygateError('INVALID_API_KEY', { reason: 'revoked' }), {
      'X-RateLimit-Limit': '10',
    });
    expect(invalid).toEqual({
      status: 401,
      body: { success: false, error: 'Invalid API key', code: 'INVALID_API_KEY' },
      headers: {
        'X-RateLimit-Limit': '10',
        'WWW-Authenticate': 'Bearer realm="api", error="invalid_token"',
      },
    });
    expect(JSON.stringify(invalid.body)).not.toContain('revoked');
    expect(renderFailure(new KeygateError('RATE_LIMITED'), { 'Retry-After': '3' })).toEqual({
      status: 429,
      body: { success: false, error: 'Rate limit exceeded', code: 'RATE_LIMITED' },
      headers: { 'Retry-After': '3' },
    });
    expect(renderFailure(new KeygateError('ACCESS_DENIED'), {}).headers).toEqual({});
  });

  it('the reason defaults to the code and never reaches the body', () => {
    const error = new KeygateError('FORBIDDEN', { reason: 'restricted_ip' });
    expect(error.toJSON()).toEqual({
      success: false,
      error: 'This request is not allowed for this API key',
      code: 'FORBIDDEN',
    });
    expect(new KeygateError('NOT_FOUND').reason).toBe('not_found');
  });

  it('configuration errors carry a code in their message', () => {
    const error = new KeygateConfigError('INVALID_LIMIT', 'burst must be positive');
    expect(error.message).toBe('[keygate:INVALID_LIMIT] burst must be positive');
    expect(error.code).toBe('INVALID_LIMIT');
  });
});

describe('adapter kit', () => {
  it('toKeygate takes an instance or options, not both', async () => {
    const keygate = createKeygate({ authFailureLimit: false });
    expect(toKeygate({ keygate })).toBe(keygate);
    expect(() => toKeygate({ keygate, pepper: 'x'.repeat(16) } as never)).toThrow(
      KeygateConfigError,
    );
    expect(() => toKeygate({ keygate: {} as never })).toThrow(KeygateConfigError);
    await keygate.close();
  });

  it('prepareGuard validates once and resolves the resource per request', () => {
    const guard = prepareGuard<{ id?: string }>('read:data', { resource: 'website:{websiteId}' });
    expect(guard.requirement).toEqual({ scopes: ['read:data'], mode: 'all' });
    expect(guard.resource({}, (name) => (name === 'websiteId' ? 'w_1' : undefined))).toBe(
      'website:w_1',
    );
    expect(guard.resource({}, () => undefined)).toBeNull();
    const byFunction = prepareGuard<{ id?: string }>('read:data', {
      resource: (ctx) => (ctx.id ? `link:${ctx.id}` : undefined),
    });
    expect(byFunction.resource({ id: 'l_9' }, () => undefined)).toBe('link:l_9');
    expect(byFunction.resource({}, () => undefined)).toBeNull();
    expect(prepareGuard('read:data').resource({}, () => 'x')).toBeUndefined();
    expect(() => prepareGuard('read:data', { resource: 42 as never })).toThrow(KeygateConfigError);
  });

  it('readBody stops at the limit', async () => {
    expect(await readBody(Readable.from([Buffer.from('{"a":'), '1}']), undefined, 100)).toBe(
      '{"a":1}',
    );
    await expect(readBody(Readable.from(['x'.repeat(101)]), undefined, 100)).rejects.toThrow(
      'the request body is too large',
    );
    await expect(readBody(Readable.from(['x']), '5000', 100)).rejects.toThrow(
      'the request body is too large',
    );
  });
});
