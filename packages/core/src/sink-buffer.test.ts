import { afterEach, describe, expect, it, vi } from 'vitest';
import { SinkBuffer } from './sink-buffer.js';
import type { AuditEvent, AuditSink, UsageBatch } from './types.js';

const buffers: SinkBuffer[] = [];
afterEach(async () => {
  for (const buffer of buffers.splice(0)) await buffer.close();
});

const outage = () => Object.assign(new Error('connection refused'), { unavailable: true });

/** A sink that is down until `up = true`, keeping what it was given in order. */
function flakySink() {
  const state = { up: true, written: [] as string[], calls: 0 };
  const sink: AuditSink = {
    async write(events) {
      state.calls++;
      if (!state.up) throw outage();
      state.written.push(...events.map((event) => event.id));
    },
    async writeUsage(batch) {
      state.calls++;
      if (!state.up) throw outage();
      state.written.push(batch.id);
    },
  };
  return { sink, state };
}

function buffer(sink: AuditSink, maxHeld = 100) {
  const logger = { warn: vi.fn(), error: vi.fn(), info: vi.fn() };
  const dropped = vi.fn();
  const made = new SinkBuffer(sink, {
    maxHeld,
    logger,
    onDropped: dropped,
    retryMs: 10,
    maxRetryMs: 20,
  });
  buffers.push(made);
  return { buffer: made, logger, dropped };
}

const events = (...ids: string[]) => ids.map((id) => ({ id }) as AuditEvent);
const usage = (id: string, rows: number): UsageBatch => ({
  id,
  rows: Array.from({ length: rows }) as UsageBatch['rows'],
});

describe('SinkBuffer', () => {
  it('holds writes while the sink is down, answering at once, and writes them in order when it is back', async () => {
    const { sink, state } = flakySink();
    const { buffer: held, logger } = buffer(sink);
    state.up = false;
    await held.write(events('a')); // fails: the sink is known down now
    const calls = state.calls;
    await held.write(events('b'));
    await held.writeUsage(usage('u1', 3));
    await held.write(events('c'));
    expect(held.pending).toBe(6);
    expect(held.isDown).toBe(true);
    // Held writes resolve without calling the sink (only the probe does).
    expect(state.calls - calls).toBeLessThanOrEqual(1);
    state.up = true;
    await vi.waitFor(() => expect(held.pending).toBe(0));
    expect(state.written).toEqual(['a', 'b', 'u1', 'c']);
    expect(logger.warn).toHaveBeenCalledTimes(1);
    expect(logger.info).toHaveBeenCalledWith(expect.stringMatching(/answers again after/));
  });

  it('drops the oldest held past its bound, counted, with one warning per outage', async () => {
    const { sink, state } = flakySink();
    const { buffer: held, logger, dropped } = buffer(sink, 3);
    state.up = false;
    for (const id of ['a', 'b', 'c', 'd', 'e', 'f']) await held.write(events(id));
    expect(held.pending).toBeLessThanOrEqual(3);
    const lost = dropped.mock.calls.reduce((sum, [count]) => sum + count, 0);
    expect(lost + held.pending).toBe(6);
    const full = logger.warn.mock.calls.filter(([line]) =>
      String(line).includes('the most it holds'),
    );
    expect(full).toHaveLength(1);
    state.up = true;
    await vi.waitFor(() => expect(held.pending).toBe(0));
    expect(state.written.at(-1)).toBe('f');
    expect(logger.warn).toHaveBeenCalledWith(
      expect.stringContaining(`${lost} events and usage rows were dropped while it was down`),
    );
  });

  it('rejects a failure that is not an outage, for the caller to retry, and stays closed', async () => {
    const sink: AuditSink = { write: () => Promise.reject(new Error('bad batch')) };
    const { buffer: held } = buffer(sink);
    await expect(held.write(events('a'))).rejects.toThrow('bad batch');
    expect(held.isDown).toBe(false);
    expect(held.pending).toBe(0);
  });

  it('flushHeld tries what it holds at once, even while the circuit is open (shutdown)', async () => {
    const { sink, state } = flakySink();
    const { buffer: held } = buffer(sink);
    state.up = false;
    await held.write(events('a'));
    await held.write(events('b'));
    state.up = true;
    await held.flushHeld();
    expect(held.pending).toBe(0);
    expect(state.written).toEqual(['a', 'b']);
  });
});
