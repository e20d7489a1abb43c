import { afterEach, describe, expect, it, vi } from 'vitest';
import { OutageLog } from './outage-log.js';

afterEach(() => {
  vi.useRealTimers();
});

describe('OutageLog', () => {
  it('warns once per cause every 10 s, then says how many it kept quiet', () => {
    vi.useFakeTimers({ now: new Date('2026-01-01T00:00:00Z'), toFake: ['Date'] });
    const logger = { warn: vi.fn() };
    const outage = new OutageLog(logger);
    const down = new Error('connection refused');
    for (let i = 0; i < 5; i++) outage.warn('key store unavailable', down);
    outage.warn('rate limiter unavailable', down);
    vi.setSystemTime(new Date('2026-01-01T00:00:09Z'));
    outage.warn('key store unavailable', down);
    vi.setSystemTime(new Date('2026-01-01T00:00:10Z'));
    outage.warn('key store unavailable', down);
    outage.warn('key store unavailable', down);
    vi.setSystemTime(new Date('2026-01-01T00:00:21Z'));
    outage.warn('key store unavailable', down);

    expect(logger.warn.mock.calls).toEqual([
      ['[keygate] key store unavailable:', down],
      ['[keygate] rate limiter unavailable:', down],
      ['[keygate] key store unavailable (5 more since the last warning):', down],
      ['[keygate] key store unavailable (1 more since the last warning):', down],
    ]);
  });
});
