import { afterEach, describe, expect, it, vi } from 'vitest';
import { BackendUnavailableError, Circuit, declaresOutage, isOutage } from './circuit.js';
import { KeygateConfigError, KeygateError } from './errors.js';
import { createKeygate } from './keygate.js';
import { TimeoutError } from './timeout.js';

const circuits: Circuit[] = [];
afterEach(() => {
  for (const circuit of circuits.splice(0)) circuit.close();
});

function circuit(probe: () => Promise<unknown>) {
  const logger = { warn: vi.fn(), info: vi.fn() };
  const made = new Circuit({
    name: 'test store',
    whileDown: 'answering without it',
    probe,
    logger,
    retryMs: 10,
    maxRetryMs: 40,
  });
  circuits.push(made);
  return { circuit: made, logger };
}

const down = () =>
  Promise.reject(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }));

describe('Circuit', () => {
  it('opens on the first outage: later calls fail at once without running, until a probe answers', async () => {
    let answers = false;
    const probe = vi.fn(() => (answers ? Promise.resolve() : down()));
    const { circuit: breaker, logger } = circuit(probe);
    await expect(breaker.call(down)).rejects.toThrow('ECONNREFUSED');
    expect(breaker.isOpen).toBe(true);

    const run = vi.fn(() => Promise.resolve('never'));
    for (let i = 0; i < 5; i++) {
      const refusal = breaker.call(run);
      await expect(refusal).rejects.toBeInstanceOf(BackendUnavailableError);
      await expect(refusal).rejects.toMatchObject({ retryAfterSeconds: 1 });
    }
    expect(run).not.toHaveBeenCalled();
    expect(logger.warn).toHaveBeenCalledTimes(1);
    expect(logger.warn.mock.calls[0]![0]).toContain(
      'test store unavailable (connect ECONNREFUSED)',
    );

    await vi.waitFor(() => expect(probe.mock.calls.length).toBeGreaterThanOrEqual(2));
    answers = true;
    await vi.waitFor(() => expect(breaker.isOpen).toBe(false));
    expect(logger.info).toHaveBeenCalledWith(
      expect.stringMatching(/test store answers again after/),
    );
    await expect(breaker.call(run)).resolves.toBe('never');
    expect(run).toHaveBeenCalledTimes(1);
  });

  it('lets go at once of the calls still waiting when it opens', async () => {
    const { circuit: breaker } = circuit(() => new Promise(() => {}));
    const hung = breaker.call(() => new Promise(() => {}));
    const failing = breaker.call(down);
    await expect(failing).rejects.toThrow('ECONNREFUSED');
    await expect(hung).rejects.toBeInstanceOf(BackendUnavailableError);
  });

  it('stays closed for a refusal that is no outage', async () => {
    const { circuit: breaker } = circuit(() => Promise.resolve());
    const refused = new KeygateError('INVALID_REQUEST');
    await expect(breaker.call(() => Promise.reject(refused))).rejects.toBe(refused);
    const constraint = Object.assign(new Error('duplicate key'), { unavailable: false });
    await expect(breaker.call(() => Promise.reject(constraint))).rejects.toBe(constraint);
    expect(breaker.isOpen).toBe(false);
  });

  it('probes one at a time, again and again, while the backend stays down', async () => {
    const at: number[] = [];
    const { circuit: breaker } = circuit(() => {
      at.push(Date.now());
      return down();
    });
    breaker.trip(new Error('down'));
    await vi.waitFor(() => expect(at.length).toBeGreaterThanOrEqual(4), { timeout: 2_000 });
    // One probe at a time: never two in flight, each after the last failed.
    expect(at).toEqual([...at].sort((a, b) => a - b));
  });
});

describe('what counts as an outage', () => {
  it('for the key store: anything but a refusal', () => {
    expect(isOutage(new Error('socket hang up'))).toBe(true);
    expect(isOutage(new TimeoutError(10))).toBe(true);
    expect(isOutage(Object.assign(new Error('x'), { unavailable: true }))).toBe(true);
    expect(isOutage(Object.assign(new Error('x'), { unavailable: false }))).toBe(false);
    expect(isOutage(new KeygateError('INVALID_REQUEST'))).toBe(false);
  });

  it('for a sink: only what says so, a timeout, or a refusal by a circuit', () => {
    expect(declaresOutage(new Error('sink down'))).toBe(false);
    expect(declaresOutage(new TimeoutError(10))).toBe(true);
    expect(declaresOutage(Object.assign(new Error('x'), { unavailable: true }))).toBe(true);
    expect(declaresOutage(new BackendUnavailableError('sink', null, 1))).toBe(true);
  });
});

describe('circuitBreaker option', () => {
  it('refuses a retry that cannot work, when keygate is created', () => {
    for (const circuitBreaker of [
      { retryMs: 0 },
      { maxRetryMs: Number.NaN },
      { retryMs: 1_000, maxRetryMs: 500 },
    ]) {
      expect(() => createKeygate({ circuitBreaker }), JSON.stringify(circuitBreaker)).toThrow(
        KeygateConfigError,
      );
    }
  });
});
