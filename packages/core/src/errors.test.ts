import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  ERROR_CODES,
  type ErrorCode,
  failure,
  isKeygateError,
  KeygateConfigError,
  KeygateError,
} from './errors.js';

/** The errors table of the repository's README: code → status, as users read it. */
function documentedStatuses(): Map<string, number> {
  const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
  const rows = readme.matchAll(/^\| `([A-Z_]+)` +\| (\d{3}) +\|/gm);
  return new Map(Array.from(rows, ([, code, status]) => [code!, Number(status)]));
}

describe('failure', () => {
  it('answers every code with the status the README documents, and no undocumented code', () => {
    const documented = documentedStatuses();
    const codes = Object.keys(ERROR_CODES) as ErrorCode[];
    expect(new Set(codes)).toEqual(new Set(documented.keys()));
    for (const code of codes) {
      const answer = failure(new KeygateError(code));
      expect([code, answer.status]).toEqual([code, documented.get(code)]);
      expect(answer.body).toEqual({ success: false, error: ERROR_CODES[code].message, code });
    }
  });

  it('carries the Bearer challenge of 401s and of a missing scope, beside the given headers', () => {
    expect(failure(new KeygateError('AUTH_REQUIRED')).headers).toEqual({
      'WWW-Authenticate': 'Bearer realm="api"',
    });
    expect(
      failure(new KeygateError('INVALID_API_KEY', { reason: 'revoked' }), {
        'X-RateLimit-Limit': '10',
      }).headers,
    ).toEqual({
      'X-RateLimit-Limit': '10',
      'WWW-Authenticate': 'Bearer realm="api", error="invalid_token"',
    });
    const scope = new KeygateError('INSUFFICIENT_SCOPE', { requiredScope: 'read:data write:llm' });
    expect(failure(scope).headers['WWW-Authenticate']).toBe(
      'Bearer realm="api", error="insufficient_scope", scope="read:data write:llm"',
    );
    expect(failure(new KeygateError('RATE_LIMITED'), { 'Retry-After': '3' }).headers).toEqual({
      'Retry-After': '3',
    });
  });

  it('never changes the headers it is given (they may be shared)', () => {
    const shared = { 'Retry-After': '1' };
    const answer = failure(new KeygateError('SERVICE_UNAVAILABLE'), shared);
    answer.headers.Connection = 'close';
    expect(shared).toEqual({ 'Retry-After': '1' });
  });
});

describe('KeygateError', () => {
  it('keeps its reason for the audit trail, out of what the client reads', () => {
    const error = new KeygateError('FORBIDDEN', { reason: 'restricted_ip' });
    expect(error.reason).toBe('restricted_ip');
    expect(JSON.stringify(failure(error))).not.toContain('restricted_ip');
    expect(new KeygateError('NOT_FOUND').reason).toBe('not_found');
  });

  it('says what the caller passed as the message, and keeps the cause', () => {
    const cause = new Error('unique violation');
    const error = new KeygateError('INVALID_REQUEST', { message: 'name: too long', cause });
    expect(failure(error).body.error).toBe('name: too long');
    expect(error.cause).toBe(cause);
  });
});

describe('isKeygateError', () => {
  it('knows a KeygateError of another copy of the core (CommonJS beside ESM) by its shape', () => {
    class OtherCopy extends Error {
      readonly code = 'INVALID_REQUEST';
      constructor() {
        super('the database cannot store a value of this request');
        this.name = 'KeygateError';
      }
    }
    expect(isKeygateError(new KeygateError('NOT_FOUND'))).toBe(true);
    expect(isKeygateError(new OtherCopy())).toBe(true);
    expect(
      isKeygateError(Object.assign(new Error('x'), { name: 'KeygateError', code: 'NOPE' })),
    ).toBe(false);
    expect(isKeygateError(new Error('connection refused'))).toBe(false);
    expect(isKeygateError({ name: 'KeygateError', code: 'NOT_FOUND' })).toBe(false);
  });
});

describe('KeygateConfigError', () => {
  it('names its code in its message', () => {
    const error = new KeygateConfigError('INVALID_OPTION', 'tiers.secret.burst must be positive');
    expect(error.message).toBe('[keygate:INVALID_OPTION] tiers.secret.burst must be positive');
    expect(error.code).toBe('INVALID_OPTION');
  });
});
