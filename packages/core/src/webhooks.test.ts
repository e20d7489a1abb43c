import { Webhook } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import type { AuditEvent } from './types.js';
import {
  forbiddenAddress,
  isWebhookSecret,
  newWebhookSecret,
  signWebhook,
  validateWebhookUrl,
  webhookBackoff,
  webhookEventOf,
} from './webhooks.js';

describe('signWebhook', () => {
  it('signs as Standard Webhooks verifies (its reference library)', () => {
    const secret = newWebhookSecret();
    const body = JSON.stringify({
      type: 'key.revoked',
      timestamp: '2026-01-01T00:00:00Z',
      data: {},
    });
    const now = Math.floor(Date.now() / 1000);
    const headers = signWebhook(secret, 'msg_1', now, body);
    expect(new Webhook(secret).verify(body, headers)).toMatchObject({ type: 'key.revoked' });
    expect(() => new Webhook(secret).verify(`${body} `, headers)).toThrow();
    expect(() => new Webhook(newWebhookSecret()).verify(body, headers)).toThrow();
  });

  it('makes secrets of 24 random bytes and refuses short or malformed ones', () => {
    expect(isWebhookSecret(newWebhookSecret())).toBe(true);
    expect(newWebhookSecret()).not.toBe(newWebhookSecret());
    expect(isWebhookSecret('whsec_c2hvcnQ=')).toBe(false);
    expect(isWebhookSecret('c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0')).toBe(false);
  });
});

describe('forbiddenAddress', () => {
  it('allows public unicast addresses only, by default', () => {
    expect(forbiddenAddress('93.184.216.34')).toBeNull();
    expect(forbiddenAddress('2606:2800:220:1:248:1893:25c8:1946')).toBeNull();
    for (const address of [
      '127.0.0.1',
      '::1',
      '169.254.169.254',
      'fd00:ec2::254',
      '10.0.0.1',
      '172.16.5.4',
      '192.168.1.1',
      '100.64.0.1',
      '0.0.0.0',
      '::',
      '224.0.0.1',
      '255.255.255.255',
      '::ffff:127.0.0.1',
      '::ffff:169.254.169.254',
      'fe80::1',
      '64:ff9b::a9fe:a9fe',
      '2002:a9fe:a9fe::1',
    ]) {
      expect(forbiddenAddress(address), address).not.toBeNull();
    }
  });

  it('allows loopback or private networks only when asked, never the metadata service', () => {
    expect(forbiddenAddress('127.0.0.1', { allowLoopback: true })).toBeNull();
    expect(forbiddenAddress('::ffff:127.0.0.1', { allowLoopback: true })).toBeNull();
    expect(forbiddenAddress('10.0.0.1', { allowLoopback: true })).not.toBeNull();
    expect(forbiddenAddress('10.0.0.1', { allowPrivateNetworks: true })).toBeNull();
    expect(
      forbiddenAddress('169.254.169.254', { allowLoopback: true, allowPrivateNetworks: true }),
    ).not.toBeNull();
    expect(forbiddenAddress('fd00:ec2::254', { allowPrivateNetworks: true })).not.toBeNull();
  });
});

describe('validateWebhookUrl', () => {
  it('takes https URLs to public hosts, and http to loopback only where loopback is allowed', () => {
    expect(validateWebhookUrl('https://hooks.example.com/keygate').href).toBe(
      'https://hooks.example.com/keygate',
    );
    expect(validateWebhookUrl('http://127.0.0.1:8080/x', { allowLoopback: true }).port).toBe(
      '8080',
    );
    expect(validateWebhookUrl('http://localhost/x', { allowLoopback: true }).hostname).toBe(
      'localhost',
    );
  });

  it.each([
    ['not a URL', 'hooks'],
    ['plain http', 'http://hooks.example.com/'],
    ['credentials', 'https://user:secret@hooks.example.com/'],
    ['loopback', 'https://127.0.0.1/'],
    ['localhost', 'https://localhost/'],
    ['metadata', 'http://169.254.169.254/latest/meta-data/'],
    ['IPv6 loopback', 'https://[::1]/'],
    ['mapped private', 'https://[::ffff:192.168.0.1]/'],
    ['too long', `https://example.com/${'a'.repeat(2100)}`],
  ])('refuses %s with 400', (_name, url) => {
    expect(() => validateWebhookUrl(url)).toThrow(
      expect.objectContaining({ status: 400, code: 'INVALID_REQUEST' }),
    );
  });
});

describe('webhookEventOf', () => {
  const base: AuditEvent = {
    id: 'evt',
    at: new Date('2026-03-01T10:15:00Z'),
    action: 'key.revoked',
    outcome: 'success',
    reason: null,
    keyId: 'key_1',
    keyStart: 'sk_live_abcdef',
    ownerId: 'org_1',
    actor: 'cli',
    ip: null,
    userAgent: null,
    method: null,
    path: null,
    requestId: null,
    detail: null,
  };

  it('makes one event of a revocation, a leak, and a refusal for a rate limit (per key and hour)', () => {
    expect(webhookEventOf(base)).toMatchObject({
      id: 'msg_evt',
      type: 'key.revoked',
      payload: {
        type: 'key.revoked',
        data: { keyId: 'key_1', keyStart: 'sk_live_abcdef', actor: 'cli' },
      },
    });
    const limited = {
      ...base,
      action: 'auth.failed' as const,
      outcome: 'failure' as const,
      reason: 'rate_limited',
    };
    const later = { ...limited, id: 'other', at: new Date('2026-03-01T10:59:00Z') };
    const nextHour = { ...limited, at: new Date('2026-03-01T11:00:00Z') };
    expect(webhookEventOf(limited)!.id).toBe(webhookEventOf(later)!.id);
    expect(webhookEventOf(limited)!.id).not.toBe(webhookEventOf(nextHour)!.id);
    expect(webhookEventOf({ ...limited, reason: 'unknown' })).toBeNull();
    expect(webhookEventOf({ ...base, action: 'auth.succeeded' })).toBeNull();
    expect(
      webhookEventOf({ ...base, action: 'key.leaked', detail: { url: 'u' } })!.payload.data,
    ).toMatchObject({ url: 'u' });
  });
});

describe('webhookBackoff', () => {
  it('doubles from the first delay up to the cap, with at most a fifth of jitter', () => {
    for (let attempt = 1; attempt <= 12; attempt++) {
      const delay = webhookBackoff(attempt, 5_000, 60_000);
      const base = Math.min(60_000, 5_000 * 2 ** (attempt - 1));
      expect(delay).toBeGreaterThanOrEqual(base * 0.8);
      expect(delay).toBeLessThanOrEqual(base);
    }
  });
});
