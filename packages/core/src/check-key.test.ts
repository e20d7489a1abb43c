import { describe, expect, it } from 'vitest';
import { checkKey } from './check-key.js';
import { createKeyFormat, type ParsedKey } from './key-format.js';
import { type KeyMatch, knownKey } from './look-up.js';
import { DEFAULT_TIERS } from './rate-limit.js';
import type { ApiKeyRecord, KeyEnvironment, KeygateRequest } from './types.js';

const format = createKeyFormat();
const NOW = Date.parse('2026-03-10T12:00:00Z');
const parsed: ParsedKey = format.parse(format.generate('secret', 'live').secret)!;

function match(overrides: Partial<ApiKeyRecord> = {}, digest = 'current'): KeyMatch {
  const at = new Date(NOW - 86_400_000);
  const record: ApiKeyRecord = {
    id: 'key_1',
    name: 'k',
    ownerId: 'org_1',
    type: 'secret',
    environment: 'live',
    digest: 'current',
    digestVersion: 0,
    prefix: 'sk_live_',
    start: parsed.start,
    scopes: ['read:data'],
    resources: null,
    restrictions: null,
    rateLimit: null,
    metadata: null,
    expiresAt: null,
    createdAt: at,
    updatedAt: at,
    revokedAt: null,
    previousDigest: null,
    previousDigestExpiresAt: null,
    leak: null,
    ...overrides,
  };
  return { known: knownKey(record, DEFAULT_TIERS), digest };
}

const req: KeygateRequest = {
  method: 'GET',
  url: '/v1/websites/w_1/analytics',
  headers: new Headers({ origin: 'https://app.example.com' }),
  ip: '203.0.113.10',
};

function check(found: KeyMatch, environments: KeyEnvironment[] = ['live', 'test'], path = req.url) {
  const error = checkKey(found, parsed, req, path, environments, NOW);
  return error && [error.code, error.reason];
}

describe('checkKey', () => {
  it('passes a current key of an accepted environment that its restrictions allow', () => {
    expect(check(match())).toBeNull();
    expect(
      check(
        match({
          restrictions: {
            ips: ['203.0.113.0/24'],
            referrers: ['https://*.example.com'],
            endpoints: ['GET /v1/websites/*/analytics'],
          },
        }),
      ),
    ).toBeNull();
  });

  it.each([
    ['no key', { known: null, digest: 'current' } as KeyMatch, 'unknown'],
    ['a key of another type', match({ type: 'public' }), 'unknown'],
    [
      'a key of another environment than its prefix says',
      match({ environment: 'test' }),
      'unknown',
    ],
    ['an old digest past its grace', match({}, 'old'), 'rotated'],
    ['a revoked key', match({ revokedAt: new Date(NOW - 1) }), 'revoked'],
    ['an expired key', match({ expiresAt: new Date(NOW) }), 'expired'],
  ])('refuses %s as INVALID_API_KEY, the reason for the audit only', (_, found, reason) => {
    expect(check(found)).toEqual(['INVALID_API_KEY', reason]);
  });

  it('honours the old digest until its grace period ends', () => {
    const graceful = { previousDigest: 'old', previousDigestExpiresAt: new Date(NOW + 1) };
    expect(check(match(graceful, 'old'))).toBeNull();
    const over = { previousDigest: 'old', previousDigestExpiresAt: new Date(NOW) };
    expect(check(match(over, 'old'))).toEqual(['INVALID_API_KEY', 'rotated']);
  });

  it('refuses a key of an environment the app does not accept', () => {
    expect(check(match(), ['test'])).toEqual(['INVALID_API_KEY', 'wrong_environment']);
  });

  it('refuses what the key’s restrictions do not allow as FORBIDDEN, matching the whole path', () => {
    expect(check(match({ restrictions: { ips: ['10.0.0.0/8'] } }))).toEqual([
      'FORBIDDEN',
      'restricted_ip',
    ]);
    expect(check(match({ restrictions: { referrers: ['https://other.example'] } }))).toEqual([
      'FORBIDDEN',
      'restricted_referrer',
    ]);
    const endpoints = match({ restrictions: { endpoints: ['GET /v1/websites/*/analytics'] } });
    expect(check(endpoints, undefined, `/v1/websites/w_1/analytics/${'x'.repeat(3_000)}`)).toEqual([
      'FORBIDDEN',
      'restricted_endpoint',
    ]);
  });
});
