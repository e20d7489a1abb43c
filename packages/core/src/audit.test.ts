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
