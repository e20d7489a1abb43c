import { afterEach, describe, expect, it, vi } from 'vitest';
import { AuditLog, JsonLinesAuditSink, MemoryAuditSink } from './audit.js';
import type { AuditContext, AuditEvent, AuditSink, UsageBatch, UsageRow } from './types.js';

const KEY = { id: 'key_1', start: 'sk_live_abcdef', ownerId: 'org_1' };
const OTHER = { id: 'key_2', start: 'sk_live_zyxwvu', ownerId: 'org_1' };

function ctx(path = '/v1/query/websites', ip = '203.0.113.1'): AuditContext {
  return { ip, userAgent: 'curl/8', method: 'GET', path, requestId: 'r-1' };
}

/** A sink that keeps usage: every batch it was given, as given. */
class UsageSink implements AuditSink {
  readonly events: AuditEvent[] = [];
  readonly batches: UsageBatch[] = [];
  async write(events: readonly AuditEvent[]): Promise<void> {
    this.events.push(...events);
  }
  async writeUsage(batch: UsageBatch): Promise<void> {
    this.batches.push(batch);
  }
  get rows(): UsageRow[] {
    return this.batches.flatMap((b) => b.rows);
  }
}

const quiet = () => ({ warn: vi.fn(), error: vi.fn() });
const logs: AuditLog[] = [];
function auditLog(options: ConstructorParameters<typeof AuditLog>[0]): AuditLog {
  const log = new AuditLog({ logger: quiet(), ...options });
  logs.push(log);
  return log;
}

afterEach(async () => {
  vi.useRealTimers();
  for (const log of logs.splice(0)) await log.close();
});

const total = (rows: readonly UsageRow[]) =>
  rows.reduce((sum, row) => sum + row.authenticated + row.scopeChecks + row.resourceChecks, 0);

describe('usage counts', () => {
  it('one row per key, client, method, path and minute, with its counts and first/last seen', async () => {
    vi.useFakeTimers({ now: Date.parse('2026-01-01T10:00:30Z') });
    const sink = new UsageSink();
    const log = auditLog({ sinks: [sink] });
    for (let i = 0; i < 1_000; i++) log.recordUse('auth.succeeded', KEY, ctx());
    vi.setSystemTime(Date.parse('2026-01-01T10:00:50Z'));
    log.recordUse('auth.succeeded', KEY, ctx());
    log.recordUse('scope.checked', KEY, ctx());
    log.recordUse('resource.checked', KEY, ctx());
    log.recordUse('auth.succeeded', KEY, ctx('/v1/events'));
    log.recordUse('auth.succeeded', KEY, ctx(undefined, '198.51.100.7'));
    log.recordUse('auth.succeeded', OTHER, ctx());
    vi.setSystemTime(Date.parse('2026-01-01T10:01:05Z'));
    log.recordUse('auth.succeeded', KEY, ctx());
    expect(log.pending).toBe(1_007);

    await log.flush();
    expect(log.pending).toBe(0);
    expect(sink.events).toEqual([]);
    expect(sink.batches).toHaveLength(1);
    expect(sink.rows).toHaveLength(5);
    expect(total(sink.rows)).toBe(1_007);
    expect(sink.rows[0]).toEqual({
      minute: new Date('2026-01-01T10:00:00Z'),
      keyId: 'key_1',
      keyStart: 'sk_live_abcdef',
      ownerId: 'org_1',
      ip: '203.0.113.1',
      userAgent: 'curl/8',
      method: 'GET',
      path: '/v1/query/websites',
      authenticated: 1_001,
      scopeChecks: 1,
      resourceChecks: 1,
      firstSeen: new Date('2026-01-01T10:00:30Z'),
      lastSeen: new Date('2026-01-01T10:00:50Z'),
    });
    expect(sink.rows.at(-1)).toMatchObject({
      minute: new Date('2026-01-01T10:01:00Z'),
      authenticated: 1,
    });
  });

  it('writes a minute once it is over (within seconds), not with every event batch', async () => {
    vi.useFakeTimers({ now: Date.parse('2026-01-01T10:00:30Z') });
    const sink = new UsageSink();
    const log = auditLog({ sinks: [sink], flushIntervalMs: 10 });
    log.recordUse('auth.succeeded', KEY, ctx());
    log.record({ ...failure(), path: '/x' });
    await vi.advanceTimersByTimeAsync(100);
    expect(sink.events).toHaveLength(1);
    expect(sink.batches).toHaveLength(0);
    // Counted in the next minute: stays until that minute is over too.
    await vi.advanceTimersByTimeAsync(29_950);
    log.recordUse('auth.succeeded', KEY, ctx());
    await vi.advanceTimersByTimeAsync(5_100);
    expect(sink.batches).toHaveLength(1);
    expect(sink.rows.map((r) => [r.minute.toISOString(), r.authenticated])).toEqual([
      ['2026-01-01T10:00:00.000Z', 1],
    ]);
    expect(log.pending).toBe(1);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(sink.batches).toHaveLength(2);
    expect(sink.rows.at(-1)!.minute.toISOString()).toBe('2026-01-01T10:01:00.000Z');
    expect(log.pending).toBe(0);
    // Nothing left to write: no more timers, no empty batches.
    await vi.advanceTimersByTimeAsync(600_000);
    expect(sink.batches).toHaveLength(2);
  });

  it('a sink without writeUsage gets every success as an event; one with it, only the count', async () => {
    const usage = new UsageSink();
    const every: AuditEvent[] = [];
    const lines = new JsonLinesAuditSink((text) => {
      for (const line of text.trimEnd().split('\n')) every.push(JSON.parse(line));
    });
    const log = auditLog({ sinks: [usage, lines] });
    log.recordUse('auth.succeeded', KEY, ctx());
    log.recordUse('scope.checked', KEY, ctx(), () => ({ required: ['read:data'] }));
    log.record(failure());
    await log.flush();
    expect(every.map((e) => [e.action, e.outcome])).toEqual([
      ['auth.succeeded', 'success'],
      ['scope.checked', 'success'],
      ['auth.failed', 'failure'],
    ]);
    expect(every[0]).toMatchObject({ keyId: 'key_1', path: '/v1/query/websites', detail: null });
    expect(every[1]!.detail).toEqual({ required: ['read:data'] });
    expect(usage.events.map((e) => e.action)).toEqual(['auth.failed']);
    expect(usage.rows).toMatchObject([{ authenticated: 1, scopeChecks: 1, resourceChecks: 0 }]);
  });

  it('builds no event, nor its detail, when every sink keeps usage', async () => {
    const sink = new UsageSink();
    const log = auditLog({ sinks: [sink] });
    const detail = vi.fn(() => ({}));
    log.recordUse('scope.checked', KEY, ctx(), detail);
    await log.flush();
    expect(detail).not.toHaveBeenCalled();
    expect(sink.events).toEqual([]);
  });

  it('a failed batch is retried whole, with its id; uses counted meanwhile are neither lost nor doubled', async () => {
    const memory = new MemoryAuditSink();
    // The first write is stored but its reply is lost; the second fails outright.
    let calls = 0;
    const flaky: AuditSink = {
      write: (events) => memory.write(events),
      writeUsage: async (batch) => {
        calls++;
        if (calls === 1) {
          await memory.writeUsage(batch);
          throw new Error('connection reset');
        }
        if (calls === 2) throw new Error('database down');
        await memory.writeUsage(batch);
      },
    };
    const spy = vi.spyOn(flaky, 'writeUsage');
    const logger = quiet();
    const log = new AuditLog({ sinks: [flaky], logger });
    logs.push(log);
    for (let i = 0; i < 10; i++) log.recordUse('auth.succeeded', KEY, ctx());
    await log.flush();
    expect(log.pending).toBe(10);
    for (let i = 0; i < 5; i++) log.recordUse('auth.succeeded', KEY, ctx());
    await log.flush();
    expect(log.pending).toBe(15);
    await log.flush();
    expect(log.pending).toBe(0);

    const ids = spy.mock.calls.map(([batch]) => batch.id);
    expect(ids[0]).toBe(ids[1]);
    expect(ids[1]).toBe(ids[2]);
    expect(ids[3]).not.toBe(ids[2]);
    expect(spy.mock.calls.map(([batch]) => total(batch.rows))).toEqual([10, 10, 10, 5]);
    expect(logger.error).toHaveBeenCalledTimes(2);
    const to = new Date(Date.now() + 60_000);
    const [bucket] = await memory.usage({
      keyId: 'key_1',
      from: new Date(Date.now() - 3_600_000),
      to,
      interval: 'hour',
    });
    expect(bucket?.served).toBe(15);
  });

  it('past maxUsageRows, a stuck sink costs new rows (counted as dropped), never counts on waiting rows', async () => {
    const stuck: AuditSink = {
      write: async () => {},
      writeUsage: () => new Promise<void>(() => {}),
    };
    const log = new AuditLog({ sinks: [stuck], logger: quiet(), maxUsageRows: 2 });
    log.recordUse('auth.succeeded', KEY, ctx('/a'));
    log.recordUse('auth.succeeded', KEY, ctx('/b'));
    // Full: a flush starts and takes both rows on their way.
    log.recordUse('auth.succeeded', KEY, ctx('/c'));
    log.recordUse('auth.succeeded', KEY, ctx('/d'));
    // Full again while that write hangs: new rows are given up, known rows still count.
    log.recordUse('auth.succeeded', KEY, ctx('/e'));
    log.recordUse('auth.succeeded', KEY, ctx('/c'));
    expect(log.dropped).toBe(1);
    expect(log.pending).toBe(5);
  });

  it('close() writes every count; one it cannot write is reported', async () => {
    const sink = new UsageSink();
    const log = new AuditLog({ sinks: [sink], logger: quiet() });
    for (let i = 0; i < 7; i++) log.recordUse('auth.succeeded', KEY, ctx());
    await log.close();
    expect(total(sink.rows)).toBe(7);

    const logger = quiet();
    const stuck: AuditSink = { write: async () => {}, writeUsage: () => new Promise(() => {}) };
    const failing = new AuditLog({ sinks: [stuck], logger, closeTimeoutMs: 50 });
    failing.recordUse('auth.succeeded', KEY, ctx());
    failing.recordUse('auth.succeeded', KEY, ctx());
    await failing.close();
    expect(logger.error).toHaveBeenCalledWith(
      '[keygate] audit: 0 events and 2 counted uses could not be written before close',
    );
  });
});

describe('MemoryAuditSink usage', () => {
  it('served from the counts, failed and rate limited from the failure events, per bucket', async () => {
    const sink = new MemoryAuditSink();
    const hour = (h: number, m = 0) => new Date(Date.UTC(2026, 0, 1, h, m));
    const row = (minute: Date, authenticated: number, scopeChecks = 0): UsageRow => ({
      ...KEY_ROW,
      minute,
      authenticated,
      scopeChecks,
      resourceChecks: 0,
      firstSeen: minute,
      lastSeen: minute,
    });
    await sink.writeUsage({
      id: 'b1',
      rows: [row(hour(9, 59), 4), row(hour(10, 5), 3), row(hour(10, 6), 0, 2)],
    });
    // The same batch again (a retry after a lost reply) adds nothing.
    await sink.writeUsage({ id: 'b1', rows: [row(hour(10, 5), 3)] });
    await sink.writeUsage({ id: 'b2', rows: [{ ...row(hour(11, 1), 5), keyId: 'key_2' }] });
    await sink.write([
      { ...failure(), at: hour(10, 30), id: 'e1', keyId: 'key_1', reason: 'rate_limited' },
      { ...failure(), at: hour(11, 30), id: 'e2', keyId: 'key_1', reason: 'revoked' },
      { ...failure(), at: hour(11, 31), id: 'e3', keyId: 'key_2', reason: 'revoked' },
    ]);
    const counts = await sink.usage({
      keyId: 'key_1',
      from: hour(10),
      to: hour(12),
      interval: 'hour',
    });
    expect(counts.sort((a, b) => a.start.getTime() - b.start.getTime())).toEqual([
      { start: hour(10), served: 3, failed: 0, rateLimited: 1 },
      { start: hour(11), served: 0, failed: 1, rateLimited: 0 },
    ]);
  });
});

const KEY_ROW = {
  keyId: 'key_1',
  keyStart: 'sk_live_abcdef',
  ownerId: 'org_1',
  ip: null,
  userAgent: null,
  method: 'GET',
  path: '/',
};

function failure(): Omit<AuditEvent, 'id' | 'at'> & { id: string; at: Date } {
  return {
    id: crypto.randomUUID(),
    at: new Date(),
    action: 'auth.failed',
    outcome: 'failure',
    reason: 'unknown',
    keyId: null,
    keyStart: null,
    ownerId: null,
    actor: null,
    ip: '203.0.113.1',
    userAgent: null,
    method: 'GET',
    path: '/v1/query/websites',
    requestId: null,
    detail: null,
  };
}
