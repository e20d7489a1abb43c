import { afterEach, describe, expect, it, vi } from 'vitest';
import { AuditLog, JsonLinesAuditSink, MemoryAuditSink } from './audit.js';
import type { AuditEvent, AuditSink } from './types.js';

function event(path: string, extra: Partial<AuditEvent> = {}): Omit<AuditEvent, 'id' | 'at'> {
  return {
    action: 'auth.succeeded',
    outcome: 'success',
    reason: null,
    keyId: 'key_1',
    keyStart: 'sk_live_abcdef',
    ownerId: 'org_1',
    actor: null,
    ip: '203.0.113.1',
    userAgent: null,
    method: 'GET',
    path,
    requestId: null,
    detail: null,
    ...extra,
  };
}

/** A sink whose writes stay pending until the test lets them through. */
class GatedSink implements AuditSink {
  readonly written: AuditEvent[][] = [];
  readonly #gates: Array<() => void> = [];
  write = vi.fn((events: readonly AuditEvent[]) => {
    return new Promise<void>((resolve) => {
      this.#gates.push(() => {
        this.written.push([...events]);
        resolve();
      });
    });
  });
  get waiting(): number {
    return this.#gates.length;
  }
  release(): void {
    this.#gates.shift()?.();
  }
}

const quiet = () => ({ warn: vi.fn(), error: vi.fn() });
const paths = (events: readonly AuditEvent[]) => events.map((e) => e.path);
const logs: AuditLog[] = [];
function auditLog(options: ConstructorParameters<typeof AuditLog>[0]): AuditLog {
  const log = new AuditLog({ logger: quiet(), ...options });
  logs.push(log);
  return log;
}

afterEach(async () => {
  vi.useRealTimers();
  for (const log of logs.splice(0)) await log.flush();
});

describe('AuditLog', () => {
  it('writes in batches, in order, with an id and a time', async () => {
    const sink = new MemoryAuditSink();
    const write = vi.spyOn(sink, 'write');
    const log = auditLog({ sinks: [sink], batchSize: 3, flushIntervalMs: 60_000 });
    for (let i = 1; i <= 7; i++) log.record(event(`/${i}`));
    await log.flush();
    expect(write.mock.calls.map(([batch]) => batch.length)).toEqual([3, 3, 1]);
    const stored = await sink.query({ limit: 100 });
    expect(paths(stored).reverse()).toEqual(['/1', '/2', '/3', '/4', '/5', '/6', '/7']);
    expect(new Set(stored.map((e) => e.id)).size).toBe(7);
    expect(stored.every((e) => e.at instanceof Date)).toBe(true);
  });

  it('flushes on its own after the interval', async () => {
    vi.useFakeTimers();
    const sink = new MemoryAuditSink();
    const log = auditLog({ sinks: [sink], flushIntervalMs: 200 });
    log.record(event('/a'));
    await vi.advanceTimersByTimeAsync(199);
    expect(await sink.query({})).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(paths(await sink.query({}))).toEqual(['/a']);
  });

  it('drop-newest keeps the events already queued', async () => {
    const sink = new MemoryAuditSink();
    const log = auditLog({
      sinks: [sink],
      maxQueue: 3,
      onQueueFull: 'drop-newest',
      flushIntervalMs: 60_000,
    });
    for (let i = 1; i <= 5; i++) log.record(event(`/${i}`));
    expect(log.pending).toBe(3);
    expect(log.dropped).toBe(2);
    await log.flush();
    expect(paths(await sink.query({})).reverse()).toEqual(['/1', '/2', '/3']);
  });

  it('drop-oldest keeps the latest events', async () => {
    const sink = new MemoryAuditSink();
    const log = auditLog({
      sinks: [sink],
      maxQueue: 3,
      onQueueFull: 'drop-oldest',
      flushIntervalMs: 60_000,
    });
    for (let i = 1; i <= 5; i++) log.record(event(`/${i}`));
    expect(log.dropped).toBe(2);
    await log.flush();
    expect(paths(await sink.query({})).reverse()).toEqual(['/3', '/4', '/5']);
  });

  it('drop-oldest while a batch is being written loses only what it counts as dropped', async () => {
    const sink = new GatedSink();
    const log = auditLog({
      sinks: [sink],
      batchSize: 2,
      maxQueue: 3,
      onQueueFull: 'drop-oldest',
      flushIntervalMs: 60_000,
    });
    log.record(event('/1'));
    log.record(event('/2'));
    expect(sink.write).toHaveBeenCalledTimes(1);
    for (let i = 3; i <= 7; i++) log.record(event(`/${i}`));
    const flushed = log.flush();
    while (sink.waiting > 0 || log.pending > 0) {
      sink.release();
      await new Promise((resolve) => setImmediate(resolve));
    }
    await flushed;
    const written = sink.written.flat();
    expect(paths(written).slice(0, 2)).toEqual(['/1', '/2']);
    // The queue held three events while /1 and /2 were on their way: the newest three.
    expect(paths(written).slice(2)).toEqual(['/5', '/6', '/7']);
    expect(written.length + log.dropped).toBe(7);
  });

  it('a failing sink keeps the events and retries', async () => {
    const sink = new MemoryAuditSink();
    const write = vi.spyOn(sink, 'write').mockRejectedValueOnce(new Error('sink down'));
    const logger = quiet();
    const log = new AuditLog({ sinks: [sink], logger, flushIntervalMs: 60_000 });
    logs.push(log);
    log.record(event('/a'));
    log.record(event('/b'));
    await log.flush();
    expect(logger.error).toHaveBeenCalledTimes(1);
    expect(log.pending).toBe(2);
    await log.flush();
    expect(write).toHaveBeenCalledTimes(2);
    expect(log.pending).toBe(0);
    expect(paths(await sink.query({})).reverse()).toEqual(['/a', '/b']);
  });

  it('close() flushes what is queued and closes the sinks', async () => {
    const sink = new MemoryAuditSink();
    const closing = { write: vi.fn(async () => {}), close: vi.fn(async () => {}) };
    const log = auditLog({ sinks: [sink, closing], flushIntervalMs: 60_000 });
    log.record(event('/a'));
    expect(await sink.query({})).toHaveLength(0);
    await log.close();
    expect(paths(await sink.query({}))).toEqual(['/a']);
    expect(closing.close).toHaveBeenCalledTimes(1);
  });

  it('close() waits for a batch already on its way to the sink', async () => {
    const sink = new GatedSink();
    const log = auditLog({ sinks: [sink], batchSize: 1 });
    log.record(event('/a'));
    expect(sink.write).toHaveBeenCalledTimes(1);
    let closed = false;
    const closing = log.close().then(() => {
      closed = true;
    });
    await new Promise((resolve) => setImmediate(resolve));
    expect(closed).toBe(false);
    sink.release();
    await closing;
    expect(paths(sink.written.flat())).toEqual(['/a']);
  });

  it('records nothing without sinks', () => {
    const log = auditLog({ sinks: [] });
    log.record(event('/a'));
    expect(log.pending).toBe(0);
  });

  it('record() returns before a slow sink finishes', async () => {
    const sink = new GatedSink();
    const log = auditLog({ sinks: [sink], batchSize: 1 });
    log.record(event('/a'));
    expect(sink.write).toHaveBeenCalledTimes(1);
    log.record(event('/b'));
    expect(log.pending).toBe(2);
    sink.release();
    await new Promise((resolve) => setImmediate(resolve));
    sink.release();
    await log.flush();
    expect(paths(sink.written.flat())).toEqual(['/a', '/b']);
  });
});

describe('AuditLog: sinks that already have an event', () => {
  it('delivers an event to every sink but the one named in `except`', async () => {
    const store = new MemoryAuditSink();
    const other = new MemoryAuditSink();
    const log = auditLog({ sinks: [store, other], flushIntervalMs: 60_000 });
    expect(log.writesTo(store)).toBe(true);
    expect(log.writesTo(new MemoryAuditSink())).toBe(false);
    log.record(event('/1'));
    log.record({ ...event('/2'), id: 'evt_2', at: new Date(0) }, { except: store });
    log.record(event('/3'));
    await log.flush();
    expect(paths(await store.query({})).reverse()).toEqual(['/1', '/3']);
    const delivered = await other.query({});
    expect(paths(delivered).reverse()).toEqual(['/1', '/2', '/3']);
    // A complete event keeps its id and time: the one the other sink already stored.
    expect(delivered[1]).toMatchObject({ id: 'evt_2', at: new Date(0) });
  });

  it('queues nothing when the excepted sink is the only one', () => {
    const only = new MemoryAuditSink();
    const log = auditLog({ sinks: [only] });
    log.record(event('/1'), { except: only });
    expect(log.pending).toBe(0);
  });

  it('still skips that sink when a failed batch is retried', async () => {
    const store = new MemoryAuditSink();
    const other = new MemoryAuditSink();
    vi.spyOn(other, 'write').mockRejectedValueOnce(new Error('down'));
    const log = auditLog({ sinks: [store, other], flushIntervalMs: 60_000 });
    log.record(event('/1'), { except: store });
    log.record(event('/2'));
    await log.flush();
    expect(log.pending).toBe(2);
    await log.flush();
    expect(paths(await other.query({})).reverse()).toEqual(['/1', '/2']);
    // `/2` was written twice to the healthy sink (batches are retried whole); `/1` never.
    expect(paths(await store.query({}))).toEqual(['/2', '/2']);
  });
});

describe('AuditLog: a large backlog', () => {
  it('drop-oldest keeps the newest events in order across many drops', async () => {
    const sink = new GatedSink();
    const log = auditLog({
      sinks: [sink],
      batchSize: 100,
      maxQueue: 5_000,
      onQueueFull: 'drop-oldest',
      flushIntervalMs: 60_000,
    });
    for (let i = 1; i <= 20_000; i++) log.record(event(`/${i}`));
    expect(log.dropped).toBe(20_000 - 100 - 5_000);
    expect(log.pending).toBe(5_100);
    const flushed = log.flush();
    while (log.pending > 0) {
      sink.release();
      await new Promise((resolve) => setImmediate(resolve));
    }
    await flushed;
    const written = paths(sink.written.flat());
    const expected = [
      ...Array.from({ length: 100 }, (_, i) => `/${i + 1}`),
      ...Array.from({ length: 5_000 }, (_, i) => `/${15_001 + i}`),
    ];
    expect(written).toEqual(expected);
  });

  it("'keep' gives up nothing: it counts what waits past the bound and warns", async () => {
    const sink = new GatedSink();
    const logger = quiet();
    const log = new AuditLog({
      sinks: [sink],
      batchSize: 10,
      maxQueue: 100,
      onQueueFull: 'keep',
      flushIntervalMs: 60_000,
      logger,
    });
    logs.push(log);
    for (let i = 1; i <= 3_000; i++) log.record(event(`/${i}`));
    expect(log.dropped).toBe(0);
    expect(log.overflowed).toBe(3_000 - 10 - 100);
    expect(log.pending).toBe(3_000);
    expect(logger.warn).toHaveBeenCalledWith(expect.stringMatching(/none dropped/));
    const flushed = log.flush();
    while (log.pending > 0) {
      sink.release();
      await new Promise((resolve) => setImmediate(resolve));
    }
    await flushed;
    expect(paths(sink.written.flat())).toEqual(
      Array.from({ length: 3_000 }, (_, i) => `/${i + 1}`),
    );
  });

  it('a failed batch goes back to the front, in order, ahead of what came after it', async () => {
    const sink = new MemoryAuditSink(10_000);
    const write = vi.spyOn(sink, 'write').mockRejectedValueOnce(new Error('down'));
    const log = auditLog({ sinks: [sink], batchSize: 1_000, flushIntervalMs: 60_000 });
    // The 1,000th event starts a write, which fails while the rest are recorded.
    for (let i = 1; i <= 2_500; i++) log.record(event(`/${i}`));
    await log.flush();
    expect(log.pending).toBe(0);
    expect(write.mock.calls.map(([batch]) => batch.length)).toEqual([1_000, 1_000, 1_000, 500]);
    expect(paths(await sink.query({ limit: 10_000 })).reverse()).toEqual(
      Array.from({ length: 2_500 }, (_, i) => `/${i + 1}`),
    );
  });
});

describe('MemoryAuditSink', () => {
  it('answers newest first, filtered by key and owner, up to a limit', async () => {
    const sink = new MemoryAuditSink();
    const at = new Date();
    await sink.write([
      { ...event('/1'), id: '1', at },
      { ...event('/2', { keyId: 'key_2' }), id: '2', at },
      { ...event('/3', { ownerId: 'org_2' }), id: '3', at },
      { ...event('/4'), id: '4', at },
    ]);
    expect(paths(await sink.query({}))).toEqual(['/4', '/3', '/2', '/1']);
    expect(paths(await sink.query({ keyId: 'key_1' }))).toEqual(['/4', '/3', '/1']);
    expect(paths(await sink.query({ ownerId: 'org_1', keyId: 'key_1' }))).toEqual(['/4', '/1']);
    expect(paths(await sink.query({ limit: 2 }))).toEqual(['/4', '/3']);
  });

  it('keeps at most its capacity, dropping the oldest', async () => {
    const sink = new MemoryAuditSink(2);
    const at = new Date();
    await sink.write([1, 2, 3].map((i) => ({ ...event(`/${i}`), id: String(i), at })));
    expect(paths(await sink.query({}))).toEqual(['/3', '/2']);
  });
});

describe('JsonLinesAuditSink', () => {
  it('writes one JSON object per line', async () => {
    const lines: string[] = [];
    const sink = new JsonLinesAuditSink((text) => lines.push(text));
    const at = new Date('2026-01-01T00:00:00Z');
    await sink.write([
      { ...event('/1'), id: '1', at },
      { ...event('/2'), id: '2', at },
    ]);
    const parsed = lines
      .join('')
      .trimEnd()
      .split('\n')
      .map((line) => JSON.parse(line));
    expect(parsed.map((e) => e.path)).toEqual(['/1', '/2']);
    expect(parsed[0].at).toBe('2026-01-01T00:00:00.000Z');
  });
});

describe('AuditLog.close', () => {
  it('gives up on a sink that never answers after closeTimeoutMs, and says how many events were lost', async () => {
    const logger = quiet();
    const stuck: AuditSink = { write: () => new Promise<void>(() => {}), close: vi.fn() };
    const log = new AuditLog({ sinks: [stuck], logger, closeTimeoutMs: 50, flushIntervalMs: 1 });
    log.record(event('/a'));
    log.record(event('/b'));

    await log.close();

    expect(logger.error).toHaveBeenCalledWith(
      '[keygate] audit: 2 events could not be written before close',
    );
    expect(stuck.close).toHaveBeenCalledOnce();
  });

  it('reports nothing lost when the sinks took everything', async () => {
    const logger = quiet();
    const sink = new MemoryAuditSink();
    const log = new AuditLog({ sinks: [sink], logger, closeTimeoutMs: 50 });
    log.record(event('/a'));

    await log.close();

    expect(logger.error).not.toHaveBeenCalled();
    expect(paths(await sink.query({}))).toEqual(['/a']);
  });
});
