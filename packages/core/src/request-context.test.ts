import { describe, expect, it } from 'vitest';
import { createKeyFormat } from './key-format.js';
import { requestContext, requestIdOf } from './request-context.js';
import type { KeygateRequest } from './types.js';

const format = createKeyFormat();
const secret = format.generate('secret', 'live');

function request(headers: Record<string, string>, init: Partial<KeygateRequest> = {}) {
  return { method: 'GET', url: '/', headers: new Headers(headers), ip: '203.0.113.10', ...init };
}

describe('requestContext', () => {
  it('records the client, the method, the path, and no request id until an event needs one', () => {
    const ctx = requestContext(request({ 'user-agent': 'curl/8' }), '/v1/query/websites', format);
    expect(ctx).toEqual({
      ip: '203.0.113.10',
      userAgent: 'curl/8',
      method: 'GET',
      path: '/v1/query/websites',
      requestId: null,
    });
    const id = requestIdOf(ctx);
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    // The request's other events share it.
    expect(requestIdOf(ctx)).toBe(id);
  });

  it('takes the framework’s request id first, then a plain x-request-id, and refuses others', () => {
    const given = requestContext(
      request({ 'x-request-id': 'from-client' }, { requestId: 'from-framework' }),
      '/',
      format,
    );
    expect(given.requestId).toBe('from-framework');
    expect(requestContext(request({ 'x-request-id': 'abc.123:x-y' }), '/', format).requestId).toBe(
      'abc.123:x-y',
    );
    for (const bad of ['has space', 'x'.repeat(129), 'semi;colon']) {
      expect(requestContext(request({ 'x-request-id': bad }), '/', format).requestId).toBeNull();
    }
  });

  it('cuts a key in the path, user agent or request id to its start, before shortening them', () => {
    const ctx = requestContext(
      request({ 'user-agent': `agent ${secret.secret}`, 'x-request-id': secret.secret }),
      `/v1/${secret.secret}/${'x'.repeat(3_000)}`,
      format,
    );
    const recorded = JSON.stringify(ctx);
    expect(recorded).not.toContain(secret.secret);
    expect(ctx.userAgent).toBe(`agent ${secret.start}`);
    expect(ctx.requestId).toBe(secret.start);
    expect(ctx.path!.startsWith(`/v1/${secret.start}/xx`)).toBe(true);
    expect(ctx.path).toHaveLength(2048);
  });
});
