import { describe, expect, it } from 'vitest';
import { KeyManagementError } from './errors.js';
import { fillBuckets, usageInput, usageWindow } from './usage-window.js';

const NOW = new Date('2026-03-10T14:25:00Z');
const windowOf = (input: unknown) => usageWindow(usageInput.parse(input), NOW);
const iso = (date: Date) => date.toISOString();

describe('usageWindow', () => {
  it('24h: 24 hourly buckets, the last one the hour in progress', () => {
    const window = windowOf({});
    expect(window).toMatchObject({ range: '24h', interval: 'hour', count: 24, to: NOW });
    expect(iso(window.from)).toBe('2026-03-09T15:00:00.000Z');
  });

  it('7d: 168 hourly buckets; 30d: 30 UTC days', () => {
    expect(windowOf({ range: '7d' })).toMatchObject({ interval: 'hour', count: 168 });
    const month = windowOf({ range: '30d' });
    expect(month).toMatchObject({ interval: 'day', count: 30 });
    expect(iso(month.from)).toBe('2026-02-09T00:00:00.000Z');
  });

  it('a range with another interval, or ending at a given time', () => {
    expect(windowOf({ range: '7d', interval: 'day' })).toMatchObject({ count: 7 });
    const ending = windowOf({ to: '2026-03-01T00:00:00Z' });
    // `to` is exclusive: the last bucket is the hour before it.
    expect(iso(ending.from)).toBe('2026-02-28T00:00:00.000Z');
    expect(ending.count).toBe(24);
  });

  it('a custom window starts at the bucket holding `from`; hourly up to 7 days, daily beyond', () => {
    const short = windowOf({ from: '2026-03-10T09:30:00+01:00' });
    expect(short).toMatchObject({ range: null, interval: 'hour', count: 7 });
    expect(iso(short.from)).toBe('2026-03-10T08:00:00.000Z');
    const long = windowOf({ from: '2026-02-01', to: new Date('2026-03-01T00:00:00Z') });
    expect(long).toMatchObject({ interval: 'day', count: 28 });
  });

  it.each([
    [{ range: '1y' }, 'range'],
    [{ interval: 'minute' }, 'interval'],
    [{ from: 'yesterday' }, 'from'],
    [{ from: '1' }, 'from'],
    [{ to: '2026-13-01T00:00:00Z' }, 'to'],
    [{ range: '24h', from: '2026-03-01' }, 'either range or from'],
    [{ unknown: 1 }, 'unknown'],
  ])('refuses %j', (input, mentioned) => {
    const result = usageInput.safeParse(input);
    expect(result.success).toBe(false);
    expect(JSON.stringify(result.error?.issues)).toContain(mentioned);
  });

  it('refuses an empty window and one of more than 1,000 buckets', () => {
    expect(() => windowOf({ from: '2026-03-11T00:00:00Z' })).toThrow(KeyManagementError);
    expect(() => windowOf({ from: '2026-03-10T15:00:00Z', to: NOW })).toThrow(
      'from must be before to',
    );
    expect(() => windowOf({ range: '30d', interval: 'hour' })).not.toThrow();
    expect(() => windowOf({ from: '2026-01-01', interval: 'hour' })).toThrow(
      'the window holds 1647 hours; at most 1000 buckets are returned',
    );
  });
});

describe('fillBuckets', () => {
  it('every bucket, oldest first, zeros where nothing was counted', () => {
    const window = windowOf({ range: '24h' });
    const counted = [
      { start: new Date('2026-03-10T14:00:00Z'), served: 5, failed: 1, rateLimited: 2 },
      { start: new Date('2026-03-09T15:00:00Z'), served: 1, failed: 0, rateLimited: 0 },
    ];
    const buckets = fillBuckets(window, counted);
    expect(buckets).toHaveLength(24);
    expect(buckets[0]).toEqual(counted[1]);
    expect(buckets[23]).toEqual(counted[0]);
    expect(buckets[1]).toEqual({
      start: new Date('2026-03-09T16:00:00Z'),
      served: 0,
      failed: 0,
      rateLimited: 0,
    });
  });
});
