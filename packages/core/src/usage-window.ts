import { z } from 'zod';
import { KeyManagementError } from './errors.js';
import type { AuditEvent, UsageCounts, UsageQuery } from './types.js';

export type UsageRange = '24h' | '7d' | '30d';
export type UsageInterval = 'hour' | 'day';

/** Length of a bucket, in ms. Days are UTC days. */
export const INTERVAL_MS: Record<UsageInterval, number> = { hour: 3_600_000, day: 86_400_000 };

const RANGES: Record<UsageRange, { length: number; interval: UsageInterval }> = {
  '24h': { length: 86_400_000, interval: 'hour' },
  '7d': { length: 7 * 86_400_000, interval: 'hour' },
  '30d': { length: 30 * 86_400_000, interval: 'day' },
};

/** Most buckets one usage read returns (a bit more than 41 days of hours). */
export const MAX_USAGE_BUCKETS = 1_000;

const instant = z
  .union([
    z.date(),
    z.iso.datetime({ offset: true, error: 'must be an ISO-8601 date and time' }),
    z.iso.date(),
  ])
  .transform((value) => new Date(value))
  .refine((date) => !Number.isNaN(date.getTime()), 'must be a valid date');

/** What a usage read may ask for; see `UsageOptions`. */
export const usageInput = z
  .object({
    range: z.enum(['24h', '7d', '30d']).optional(),
    from: instant.optional(),
    to: instant.optional(),
    interval: z.enum(['hour', 'day']).optional(),
  })
  .strict()
  .refine((input) => !(input.range && input.from), 'give either range or from, not both');

export interface UsageOptions {
  /** The window ending at `to`: `24h` (24 hourly buckets), `7d` (168 hourly), `30d` (30 daily). Default `24h`. */
  range?: UsageRange;
  /** Start of a custom window instead of `range` (a Date or ISO-8601), rounded down to the interval. */
  from?: Date | string;
  /** End of the window, exclusive (a Date or ISO-8601). Default: now. */
  to?: Date | string;
  /** Bucket size. Default: the range's; for a custom window, `hour` up to 7 days and `day` beyond. */
  interval?: UsageInterval;
}

/** A key's requests over a window, bucket by bucket. */
export interface KeyUsage {
  keyId: string;
  /** The range asked for; `null` for a custom window (`from`). */
  range: UsageRange | null;
  interval: UsageInterval;
  /** Start of the first bucket. */
  from: Date;
  /** End of the window, exclusive. */
  to: Date;
  /** Every bucket of the window, oldest first, zeros included. */
  buckets: UsageCounts[];
}

export interface UsageWindow extends Omit<UsageQuery, 'keyId'> {
  range: UsageRange | null;
  /** Number of buckets. */
  count: number;
}

/** The window and buckets a usage read covers; an empty or too long one is an `INVALID_REQUEST`. */
export function usageWindow(input: z.output<typeof usageInput>, now: Date): UsageWindow {
  const to = input.to ?? now;
  if (input.from) {
    const interval =
      input.interval ?? (to.getTime() - input.from.getTime() <= 7 * 86_400_000 ? 'hour' : 'day');
    const size = INTERVAL_MS[interval];
    const from = floor(input.from.getTime(), size);
    if (from >= to.getTime())
      throw new KeyManagementError('INVALID_REQUEST', 'from must be before to');
    return checked({
      range: null,
      interval,
      from: new Date(from),
      to,
      count: Math.ceil((to.getTime() - from) / size),
    });
  }
  const range = input.range ?? '24h';
  const interval = input.interval ?? RANGES[range].interval;
  const size = INTERVAL_MS[interval];
  const count = Math.max(1, Math.round(RANGES[range].length / size));
  // The last bucket is the one `to` falls in (the one in progress, when `to` is now).
  const from = floor(to.getTime() - 1, size) - (count - 1) * size;
  return checked({ range, interval, from: new Date(from), to, count });
}

function checked(window: UsageWindow): UsageWindow {
  if (window.count > MAX_USAGE_BUCKETS) {
    throw new KeyManagementError(
      'INVALID_REQUEST',
      `the window holds ${window.count} ${window.interval}s; at most ${MAX_USAGE_BUCKETS} buckets are returned`,
    );
  }
  return window;
}

function floor(time: number, size: number): number {
  return time - (((time % size) + size) % size);
}

/** Which bucket of the window `time` (ms) falls in, or `null` outside it. */
export function bucketIndex(time: number, query: Omit<UsageQuery, 'keyId'>): number | null {
  if (time < query.from.getTime() || time >= query.to.getTime()) return null;
  return Math.floor((time - query.from.getTime()) / INTERVAL_MS[query.interval]);
}

/** Every bucket of the window, oldest first: the counts a reader returned, zeros elsewhere. */
export function fillBuckets(window: UsageWindow, counted: readonly UsageCounts[]): UsageCounts[] {
  const size = INTERVAL_MS[window.interval];
  const byStart = new Map(counted.map((c) => [c.start.getTime(), c]));
  return Array.from({ length: window.count }, (_, i) => {
    const start = window.from.getTime() + i * size;
    const found = byStart.get(start);
    return {
      start: new Date(start),
      served: found?.served ?? 0,
      failed: found?.failed ?? 0,
      rateLimited: found?.rateLimited ?? 0,
    };
  });
}

/** A failure counted as rate limited (429) rather than failed. */
export function isRateLimited(event: Pick<AuditEvent, 'reason'>): boolean {
  return event.reason === 'rate_limited';
}
