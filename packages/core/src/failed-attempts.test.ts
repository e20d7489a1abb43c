import { describe, expect, it, vi } from 'vitest';
import { AuditLog, MemoryAuditSink } from './audit.js';
import { KeygateError } from './errors.js';
import { FailedAttempts } from './failed-attempts.js';
import { MemoryAuthFailureGuard } from './local-backends.js';
import { OutageLog } from './outage-log.js';
import type { AuditContext, AuthFailureGuard } from './types.js';

function setup(guard: AuthFailureGuard | null) {
  const sink = new MemoryAuditSink();
  const audit = new AuditLog({ sinks: [sink], logger: { warn: vi.fn(), error: vi.fn() } });
  const logger = { warn: vi.fn() };
  const attempts = new FailedAttempts(guard, audit, new OutageLog(logger));
  const events = async () => {
    await audit.flush();
    return (await sink.query({})).reverse();
  };
  return { attempts, events, logger };
}

const ctx = (ip: string | null = '203.0.113.10'): AuditContext => ({
  ip,
  userAgent: 'curl/8',
  method: 'GET',
  path: '/v1/query/websites',
  requestId: 'r-1',
});
const invalid = () => new KeygateError('INVALID_API_KEY', { reason: 'unknown' });

describe('FailedAttempts', () => {
  it('audits each failure with its reason and subject, and answers it', async () => {
    const { attempts, events } = setup(null);
    const subject = { id: 'key_1', start: 'sk_live_abcdef', ownerId: 'org_1' };
    const answer = await attempts.fail(ctx(), invalid(), subject);
    expect(answer).toMatchObject({ ok: false, status: 401, body: { code: 'INVALID_API_KEY' } });
    const refused = attempts.refuse(
      ctx(),
      new KeygateError('SERVICE_UNAVAILABLE', { reason: 'store_unavailable' }),
      null,
      { 'Retry-After': '1' },
    );
    expect(refused).toMatchObject({ status: 503, headers: { 'Retry-After': '1' } });
    expect((await events()).map((e) => [e.action, e.reason, e.keyId, e.requestId])).toEqual([
      ['auth.failed', 'unknown', 'key_1', 'r-1'],
      ['auth.failed', 'store_unavailable', null, 'r-1'],
    ]);
  });

  it('past the guard’s limit answers 429; later failures cost no guard call until the block ends', async () => {
    const guard = new MemoryAuthFailureGuard({ points: 2, durationSeconds: 60, blockSeconds: 30 });
    const record = vi.spyOn(guard, 'recordFailure');
    const { attempts } = setup(guard);
    expect((await attempts.fail(ctx(), invalid(), null)).status).toBe(401);
    expect((await attempts.fail(ctx(), invalid(), null)).status).toBe(401);
    const blocked = await attempts.fail(ctx(), invalid(), null);
    expect(blocked).toMatchObject({
      status: 429,
      body: { code: 'RATE_LIMITED', error: 'Too many failed authentication attempts' },
    });
    expect(Number(blocked.headers['Retry-After'])).toBe(30);
    expect(record).toHaveBeenCalledTimes(3);
    expect((await attempts.fail(ctx(), invalid(), null)).status).toBe(429);
    expect(record).toHaveBeenCalledTimes(3);
    // Other clients are not blocked; a failure that is not the client's (refuse) is not counted.
    expect((await attempts.fail(ctx('198.51.100.1'), invalid(), null)).status).toBe(401);
    attempts.refuse(ctx('192.0.2.1'), invalid(), null);
    expect(record).toHaveBeenCalledTimes(4);
  });

  it('never counts requests without an IP together, and survives a guard that is down', async () => {
    const guard: AuthFailureGuard = {
      recordFailure: vi.fn(() => Promise.reject(new Error('down'))),
    };
    const { attempts, logger } = setup(guard);
    expect((await attempts.fail(ctx(null), invalid(), null)).status).toBe(401);
    expect(guard.recordFailure).not.toHaveBeenCalled();
    expect((await attempts.fail(ctx(), invalid(), null)).status).toBe(401);
    expect(logger.warn).toHaveBeenCalledWith(
      '[keygate] failed-authentication guard unavailable:',
      expect.any(Error),
    );
  });
});
