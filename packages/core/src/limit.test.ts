import { describe, expect, it, vi } from 'vitest';
import { limitRequest } from './limit.js';
import { OutageLog } from './outage-log.js';
import { MemoryRateLimiter, policiesFor, rateLimitPolicyHeader } from './rate-limit.js';
import type { RateLimiter } from './types.js';

const policies = policiesFor({ perSecond: 1, burst: 2, daily: 100 }, null);
const outage = () => new OutageLog({ warn: vi.fn() });

describe('limitRequest', () => {
  it('admits within the limits, with the headers of the limiter’s answer', async () => {
    const limited = await limitRequest(
      new MemoryRateLimiter(),
      'key_1',
      policies,
      rateLimitPolicyHeader(policies),
      outage(),
    );
    expect(limited.error).toBeNull();
    expect(limited.headers).toMatchObject({
      'X-RateLimit-Limit': '2',
      'X-RateLimit-Remaining': '1',
      'RateLimit-Policy': '"burst";q=2;w=2, "daily";q=100;w=86400',
    });
    expect(limited.headers['Retry-After']).toBeUndefined();
  });

  it('refuses with RATE_LIMITED and Retry-After once a limit is spent', async () => {
    const limiter = new MemoryRateLimiter();
    await limitRequest(limiter, 'key_1', policies, undefined, outage());
    await limitRequest(limiter, 'key_1', policies, undefined, outage());
    const refused = await limitRequest(limiter, 'key_1', policies, undefined, outage());
    expect(refused.error?.code).toBe('RATE_LIMITED');
    expect(refused.error?.reason).toBe('rate_limited');
    expect(refused.headers['X-RateLimit-Remaining']).toBe('0');
    expect(refused.headers['Retry-After']).toBe('1');
    // Another subject has its own limits.
    expect((await limitRequest(limiter, 'key_2', policies, undefined, outage())).error).toBeNull();
  });

  it('a limiter that fails answers SERVICE_UNAVAILABLE, retry in a second, and is logged once', async () => {
    const failing: RateLimiter = { consume: () => Promise.reject(new Error('redis down')) };
    const logger = { warn: vi.fn() };
    const log = new OutageLog(logger);
    for (let i = 0; i < 3; i++) {
      const limited = await limitRequest(failing, 'key_1', policies, undefined, log);
      expect(limited.error?.code).toBe('SERVICE_UNAVAILABLE');
      expect(limited.error?.reason).toBe('limiter_unavailable');
      expect(limited.headers).toEqual({ 'Retry-After': '1' });
    }
    expect(logger.warn).toHaveBeenCalledTimes(1);
  });

  it('no limiter: no limit and no headers', async () => {
    expect(await limitRequest(null, 'key_1', policies, undefined, outage())).toEqual({
      headers: {},
      error: null,
    });
  });
});
