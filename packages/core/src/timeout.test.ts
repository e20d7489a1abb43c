import { describe, expect, it } from 'vitest';
import { TimeoutError, withTimeout } from './timeout.js';

describe('withTimeout', () => {
  it('passes on the answer, or the failure, that comes in time', async () => {
    await expect(withTimeout(Promise.resolve('answer'), 1_000)).resolves.toBe('answer');
    await expect(withTimeout(Promise.reject(new Error('refused')), 1_000)).rejects.toThrow(
      'refused',
    );
  });

  it('rejects with a TimeoutError, or the caller’s own error, when no answer comes', async () => {
    const never = new Promise<never>(() => {});
    const late = await withTimeout(never, 10).catch((error: unknown) => error);
    expect(late).toBeInstanceOf(TimeoutError);
    expect((late as TimeoutError).code).toBe('TIMEOUT');
    expect((late as Error).message).toBe('no answer within 10 ms');
    await expect(withTimeout(never, 10, () => new RangeError('store stalled'))).rejects.toThrow(
      RangeError,
    );
  });

  it('a call that fails after its deadline raises no unhandled rejection', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      let fail!: (error: Error) => void;
      const slow = new Promise<never>((_, reject) => {
        fail = reject;
      });
      await expect(withTimeout(slow, 10)).rejects.toBeInstanceOf(TimeoutError);
      fail(new Error('too late'));
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });
});
