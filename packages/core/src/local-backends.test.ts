import { describe, expect, it } from 'vitest';
import { KeygateConfigError } from './errors.js';
import { MemoryAuthFailureGuard } from './local-backends.js';

/** A guard on a hand-driven clock, starting at the beginning of a window. */
function guardAt(
  limit: ConstructorParameters<typeof MemoryAuthFailureGuard>[0],
  maxIps?: number,
): { clock: { now: number }; guard: MemoryAuthFailureGuard } {
  const clock = { now: 1_800_000_000_000 };
  const guard = new MemoryAuthFailureGuard(limit, { now: () => clock.now, maxIps });
  return { clock, guard };
}

async function failures(guard: MemoryAuthFailureGuard, ip: string, n: number): Promise<number[]> {
  const results: number[] = [];
  for (let i = 0; i < n; i++) results.push(await guard.recordFailure(ip));
  return results;
}

describe('MemoryAuthFailureGuard', () => {
  it('allows `points` failures, then blocks the IP for `blockSeconds`; other IPs are not affected', async () => {
    const { guard } = guardAt({ points: 3, durationSeconds: 60, blockSeconds: 300 });
    expect(await failures(guard, '203.0.113.7', 5)).toEqual([0, 0, 0, 300, 300]);
    expect(await guard.recordFailure('203.0.113.8')).toBe(0);
  });

  it('counts down a block and forgets it once over', async () => {
    const { clock, guard } = guardAt({ points: 1, durationSeconds: 10, blockSeconds: 30 });
    expect(await failures(guard, '198.51.100.1', 2)).toEqual([0, 30]);
    clock.now += 12_500;
    expect(await guard.recordFailure('198.51.100.1')).toBe(18);
    clock.now += 18_000;
    expect(await guard.recordFailure('198.51.100.1')).toBe(0);
  });

  it('a new window starts a new count', async () => {
    const { clock, guard } = guardAt({ points: 2, durationSeconds: 60, blockSeconds: 0 });
    expect(await failures(guard, '192.0.2.1', 2)).toEqual([0, 0]);
    clock.now += 60_000;
    expect(await failures(guard, '192.0.2.1', 2)).toEqual([0, 0]);
  });

  it('without a block, answers how long until the window ends', async () => {
    const { clock, guard } = guardAt({ points: 1, durationSeconds: 60, blockSeconds: 0 });
    clock.now += 15_000;
    expect(await failures(guard, '192.0.2.2', 2)).toEqual([0, 45]);
  });

  it('tracks at most `maxIps` blocked IPs, forgetting the oldest block first', async () => {
    const { guard } = guardAt({ points: 1, durationSeconds: 60, blockSeconds: 300 }, 2);
    for (const ip of ['192.0.2.10', '192.0.2.11', '192.0.2.12']) {
      expect(await failures(guard, ip, 2)).toEqual([0, 300]);
    }
    // The first block and the first count were both forgotten: that IP starts afresh.
    expect(await guard.recordFailure('192.0.2.10')).toBe(0);
    expect(await guard.recordFailure('192.0.2.12')).toBe(300);
  });

  it('refuses impossible limits when built, not per request', () => {
    for (const limit of [
      { points: 0 },
      { points: Number.NaN },
      { durationSeconds: -1 },
      { blockSeconds: -5 },
      { blockSeconds: Number.POSITIVE_INFINITY },
    ]) {
      expect(() => new MemoryAuthFailureGuard(limit)).toThrow(KeygateConfigError);
    }
  });
});
